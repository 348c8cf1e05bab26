"""Pruning surgery (docs/method.md §4): cut the dead channels out, leaving a real, smaller network.

During training nothing changes shape: a dead channel is only zeroed (`mask_model`). At the end each
channel group's dead channels are sliced out of its producers (dim 0), its BatchNorms and its consumers
(dim 1, or the Linear columns). Every parameter of a dead channel is zero in the masked model, so it adds
nothing downstream and the pruned model computes what the masked one computes, up to float error.

The result is the same model class with smaller layers: `build_model(arch, num_classes, width,
widths=pruned.widths())` rebuilds it, so a checkpoint is just the state_dict plus those widths.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from torch import nn

from .models import build_model
from .storage import load_checkpoint, load_state, save_checkpoint, write_json


def dead_masks(model: nn.Module, rel_threshold: float = 0.01) -> list[torch.Tensor]:
    """Per channel group, in `model.channel_groups()` order: True for the channels to remove."""
    return [~g.alive(rel_threshold) for g in model.channel_groups()]


def _check(groups, dead) -> None:
    if len(dead) != len(groups):
        raise ValueError(f"dead: expected {len(groups)} masks (one per channel group), got {len(dead)}")
    for g, d in zip(groups, dead):
        if d.shape != (g.width,):
            raise ValueError(f"dead: group {g.name} has {g.width} channels, mask has shape {tuple(d.shape)}")
        if bool(d.all()):
            raise ValueError(f"dead: every channel of group {g.name} is dead; at least one must stay")


def mask_model(model: nn.Module, dead) -> nn.Module:
    """A copy of `model` with every parameter of the dead channels zeroed (same shapes)."""
    masked = copy.deepcopy(model)
    groups = masked.channel_groups()
    _check(groups, dead)
    for g, d in zip(groups, dead):
        g.zero_channels(d)
    return masked


def _cut(module: nn.Module, name: str, index: torch.Tensor, dim: int) -> None:
    """Replace module.<name> by its slices `index` along `dim`: a fresh contiguous tensor (the model may be
    channels_last), so the pruned model shares no storage with the original."""
    old = getattr(module, name)
    if old is None:  # bias=False, affine=False
        return
    new = old.detach().index_select(dim, index.to(old.device)).contiguous()
    setattr(module, name, nn.Parameter(new, old.requires_grad) if isinstance(old, nn.Parameter) else new)


@torch.no_grad()
def prune_model(model: nn.Module, dead=None, rel_threshold: float = 0.01) -> nn.Module:
    """A copy of `model` with the dead channels physically removed (`dead` defaults to `dead_masks`)."""
    pruned = copy.deepcopy(model)
    groups = pruned.channel_groups()
    if dead is None:
        dead = dead_masks(pruned, rel_threshold)
    _check(groups, dead)
    # Fix every index before cutting anything: a VGG conv produces its own group and consumes the previous
    # one, and the groups' widths are read from the live shapes.
    keeps = [torch.nonzero(~d.cpu()).flatten() for d in dead]
    for g, keep in zip(groups, keeps):
        n = len(keep)
        for conv in g.producers:
            depthwise = conv.groups > 1 and conv.groups == conv.in_channels
            if conv.groups > 1 and not depthwise:
                raise NotImplementedError(f"{g.name}: grouped (non-depthwise) producer conv")
            _cut(conv, "weight", keep, 0)
            _cut(conv, "bias", keep, 0)
            conv.out_channels = n
            if depthwise:  # each filter reads only its own channel: weight dim 1 stays 1
                conv.in_channels = conv.groups = n
        for bn in g.norms:
            for name in ("weight", "bias", "running_mean", "running_var"):
                _cut(bn, name, keep, 0)
            bn.num_features = n
        for m in g.consumers:
            if isinstance(m, nn.Linear):  # after the (C, H, W) flatten, channel c owns `repeat` columns
                cols = (keep[:, None] * g.repeat + torch.arange(g.repeat)).flatten()
                _cut(m, "weight", cols, 1)
                m.in_features = len(cols)
            else:
                if m.groups != 1:
                    raise NotImplementedError(f"{g.name}: grouped consumer conv")
                _cut(m, "weight", keep, 1)
                m.in_channels = n
    return pruned


def _save_via_temp(path: Path, save) -> Path:
    """`save(tmp)` into a temporary name in the same folder, then rename: a reader never sees half a file. The
    temporary name keeps the extension (torch.export warns about a .pt2 archive named otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _rebuild(arch: str, num_classes: int, width: float, widths, state: dict, path) -> nn.Module:
    model = build_model(arch, num_classes, width=width, widths=widths)
    load_state(model, state, path)
    return model.eval()


def _batch_dynamic(example_input):
    """(args, dynamic_shapes) for export with a free batch size. Tracing a batch of 1 would pin it to 1
    (export specialises sizes 0 and 1), so a single example is traced twice over."""
    x = example_input.detach().cpu()
    if x.shape[0] == 1:
        x = torch.cat([x, x])
    return (x,), ({0: torch.export.Dim.DYNAMIC},)


def save_pruned(model: nn.Module, arch: str, num_classes: int, width: float, out_dir, example_input,
                export: bool = True) -> dict:
    """Write pruned_state.pt (arch, num_classes, width, widths, state_dict), widths.json and, when `export`,
    pruned.pt2 (a torch.export program, any batch size); returns their paths under the keys state, widths, pt2."""
    out = Path(out_dir)
    paths = {"state": out / "pruned_state.pt", "widths": out / "widths.json", "pt2": out / "pruned.pt2"}
    widths = [int(w) for w in model.widths()]
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # Export the model rebuilt from exactly what is saved: this proves the checkpoint loads before it is
    # written, and the .pt2 is a CPU, eval-mode program whatever device and mode the caller's model has.
    rebuilt = _rebuild(arch, num_classes, width, widths, state, paths["state"])
    if export:
        args, dynamic = _batch_dynamic(example_input)
        program = torch.export.export(rebuilt, args, dynamic_shapes=dynamic)
    else:
        paths.pop("pt2")
    save_checkpoint(paths["state"], dict(arch=arch, num_classes=num_classes, width=width, widths=widths,
                                         state_dict=state))
    write_json(paths["widths"], dict(arch=arch, num_classes=num_classes, width=width, widths=widths))
    if export:
        _save_via_temp(paths["pt2"], lambda tmp: torch.export.save(program, tmp))
    return paths


PRUNED_REMEDY = "Pass a pruned_state.pt written by a finished prune run (runs/prune/<run>/), or its folder."


def load_pruned(path) -> nn.Module:
    """Rebuild a pruned model (eval mode) from pruned_state.pt, or from the folder holding it."""
    path = Path(path)
    if path.is_dir():
        path = path / "pruned_state.pt"
    ckpt = load_checkpoint(path, remedy=PRUNED_REMEDY)  # a file the user points to: theirs, never "delete it"
    return _rebuild(ckpt["arch"], ckpt["num_classes"], ckpt["width"], ckpt["widths"], ckpt["state_dict"], path)


def export_onnx(model: nn.Module, path, example_input) -> Path:
    """ONNX export (TorchDynamo exporter) of an eval-mode CPU copy of `model`, batch size left free."""
    m = copy.deepcopy(model).cpu().eval()
    args, dynamic = _batch_dynamic(example_input)
    # external_data=False: weights inside the one file (the exporter's default puts them beside it, under the
    # temporary name); fine below ONNX's 2 GB limit, far above these networks.
    return _save_via_temp(Path(path), lambda tmp: torch.onnx.export(
        m, args, tmp, dynamo=True, dynamic_shapes=dynamic, external_data=False, verbose=False))


def logit_gap(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> float:
    """max |a(x) − b(x)| in eval mode, on CPU copies in float64. Removal is exact in exact arithmetic; in float32
    the rounding of differently sized sums is amplified by BatchNorms of nearly dead channels (small running
    variance; up to ~1e-3 on a short-budget student) and a GPU's TF32 adds ~1e-3 more. Float64 leaves only what
    the surgery itself does: ~1e-12 when it is exact, the size of a logit when it is not."""
    a, b = copy.deepcopy(a).cpu().double().eval(), copy.deepcopy(b).cpu().double().eval()
    with torch.no_grad():
        x = x.detach().cpu().double().contiguous()
        return (a(x) - b(x)).abs().max().item()
