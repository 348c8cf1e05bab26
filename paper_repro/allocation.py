"""Global sparsity allocation under a params or FLOPs target, re-solved every epoch (docs/method.md §3.3).

k_l(s) = max(1, min(⌊a_l·s⌋, C_l)) channels kept in layer l, where a_l counts its alive channels. We
find the largest scale s whose keep counts still meet the target pruned ratio [DPFPS rule], computing
the ratio analytically with `CostModel` and bisecting instead of DPFPS's grid search over deep copies
[chosen: same answer, no copies]. Layers with equal a_l jump together at one s, so we then hand back
single channels, in layer order, while the target still holds [chosen]: the result overshoots the
target by less than one channel's worth."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .checks import check_choice
from .counting import CostModel

TARGET_KINDS = ("params", "flops")


@dataclass
class Target:
    kind: str  # params | flops
    ratio: float  # pruned fraction, 1 - after/before

    def __str__(self):
        return f"{self.kind}={self.ratio:g}"

    def achieved(self, params_pruned: float, flops_pruned: float) -> float:
        """The pruned fraction this target counts: of the params, or of the FLOPs."""
        return params_pruned if self.kind == "params" else flops_pruned

    def met(self, params_pruned: float, flops_pruned: float) -> bool:
        """Whether a network with these pruned fractions reaches the target (float rounding forgiven): the one
        rule behind every run's target_met."""
        return self.achieved(params_pruned, flops_pruned) >= self.ratio - 1e-9


def parse_target(spec) -> Target:
    """'flops=0.60' or 'params=0.93' (or a Target). Ratio must be in (0, 1)."""
    if isinstance(spec, Target):
        kind, ratio = spec.kind, spec.ratio
    else:
        try:
            kind, value = str(spec).split("=")
            ratio = float(value)
        except ValueError:
            raise ValueError(f"target: expected 'params=R' or 'flops=R' with R in (0, 1), got {spec!r}") from None
    check_choice("target", kind, TARGET_KINDS)
    if not (0.0 < ratio < 1.0):
        raise ValueError(f"target: ratio must be in (0, 1), got {ratio!r}")
    return Target(kind, ratio)


def pruned_ratio(cost_model: CostModel, keep, kind: str) -> float:
    full = cost_model.full()[TARGET_KINDS.index(kind)]
    return 1.0 - cost_model.cost(keep)[TARGET_KINDS.index(kind)] / full


def max_ratio(cost_model: CostModel, kind: str) -> float:
    """The largest pruned ratio reachable with one channel left in every layer."""
    return pruned_ratio(cost_model, [1] * len(cost_model.widths), kind)


def check_reachable(cost_model: CostModel, target: Target) -> None:
    top = max_ratio(cost_model, target.kind)
    if target.ratio > top:
        raise ValueError(f"target: {target} is not reachable with at least one channel per layer "
                         f"(at most {target.kind}={top:.4f} for this network)")


@dataclass
class Allocation:
    scale: float
    keep: list[int]  # k_l
    alpha: list[float]  # allocation ratio α_l = 1 - k_l / C_l
    ratio: float  # pruned ratio achieved by `keep`


def keep_counts(alive, widths, s: float) -> list[int]:
    return [max(1, min(int(math.floor(a * s + 1e-9)), c)) for a, c in zip(alive, widths)]


def allocate(cost_model: CostModel, alive, target: Target, iters: int = 60) -> Allocation:
    """Per-layer keep counts meeting `target` from the current alive counts."""
    widths = cost_model.widths
    check_reachable(cost_model, target)
    ratio = lambda k: pruned_ratio(cost_model, k, target.kind)
    lo, hi = 0.0, max(c / max(a, 1) for a, c in zip(alive, widths)) + 1.0  # ratio(lo) >= target > ratio(hi)
    if ratio(keep_counts(alive, widths, hi)) >= target.ratio:
        lo = hi
    else:
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            if ratio(keep_counts(alive, widths, mid)) >= target.ratio:
                lo = mid
            else:
                hi = mid
    keep = keep_counts(alive, widths, lo)
    upper = keep_counts(alive, widths, hi)
    for l in range(len(keep)):  # hand back the channels the jump at s took together, one at a time
        while keep[l] < upper[l]:
            keep[l] += 1
            if ratio(keep) < target.ratio:
                keep[l] -= 1
                break
    return Allocation(lo, keep, [1 - k / c for k, c in zip(keep, widths)], ratio(keep))
