"""The label-free teaching signal L_M (docs/method.md §2): the teacher's predictions, its features, the peers.

L_M,i = λ1·L_KD,i + λ2·L_F,i + λ3·L_ML,i. Forms and weights are [chosen]; see docs/choices.md.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import check_choice

KD_FORMS = ("kl", "hard", "mse")


def kd_loss(student_logits, teacher_logits, temperature: float = 4.0, form: str = "kl") -> torch.Tensor:
    """Learn the teacher's predictions without labels.

    kl:   τ²·KL(softmax(z_T/τ) ‖ softmax(z_S/τ)), batch mean (Hinton; τ² keeps gradients τ-independent)
    hard: cross-entropy on the teacher's argmax (pseudo-labels)
    mse:  mean squared logit difference (as in GAL)"""
    if form == "kl":
        t = temperature
        return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                        reduction="batchmean", log_target=True) * t * t
    if form == "hard":
        return F.cross_entropy(student_logits, teacher_logits.argmax(1))
    if form == "mse":
        return F.mse_loss(student_logits, teacher_logits)
    check_choice("kd_form", form, KD_FORMS)  # raises: no form above matched


def feature_loss(student_feats: dict, teacher_feats: dict) -> torch.Tensor:
    """Σ_k mean((F_T^k − F_S^k)²) over the tap points (all at unpruned widths, so no adapter)."""
    if not teacher_feats:
        return torch.zeros((), device=next(iter(student_feats.values()), torch.zeros(())).device) \
            if student_feats else torch.zeros(())
    return sum(F.mse_loss(student_feats[k].float(), teacher_feats[k].float()) for k in teacher_feats)


def mutual_loss(student_logits, peer_logits: list, temperature: float = 1.0) -> torch.Tensor:
    """Deep mutual learning: τ²/(N−1)·Σ_j KL(sg[p_j] ‖ p_i); peers are detached (stop-gradient). 0 if N = 1."""
    if not peer_logits:
        return student_logits.new_zeros(())
    t = temperature
    log_p = F.log_softmax(student_logits / t, 1)
    total = sum(F.kl_div(log_p, F.log_softmax(z.detach() / t, 1), reduction="batchmean", log_target=True)
                for z in peer_logits)
    return total * t * t / len(peer_logits)


def labelled_kd_loss(student_logits, teacher_logits, labels, alpha: float = 0.7, temperature: float = 2.0,
                     scale_t2: bool = True) -> torch.Tensor:
    """The classic labelled distillation of the second seed (docs/method.md §8), a reference arm only:
    α·CE(y, z_S) + (1−α)·[τ²]·KL(p_T^τ ‖ p_S^τ)."""
    kl = kd_loss(student_logits, teacher_logits, temperature, "kl")
    if not scale_t2:
        kl = kl / (temperature * temperature)
    return alpha * F.cross_entropy(student_logits, labels) + (1 - alpha) * kl


class FeatureTaps:
    """Capture the outputs of a model's `feature_taps()` modules on every forward pass."""

    def __init__(self, model):
        self.out: dict[str, torch.Tensor] = {}
        self._hooks = [m.register_forward_hook(self._hook(name)) for name, m in model.feature_taps().items()]

    def _hook(self, name):
        def fn(module, inputs, output):
            self.out[name] = output
        return fn

    def remove(self):
        for h in self._hooks:
            h.remove()
