"""Saving, loading and exporting pruned networks (docs/method.md §4): what a user needs without our training code.

pruned_state.pt holds (arch, num_classes, width, widths, state_dict): `build_model(arch, num_classes, width,
widths=widths)` rebuilds the smaller network and the state loads into it. Every pipeline (ours, the classic ones,
Torch-Pruning's) writes it through `write_pruned_state`; `load_pruned` reads it; `save_pruned` adds widths.json
and a torch.export program (.pt2), `export_onnx` an ONNX file.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from torch import nn

from .models import build_model
from .storage import load_checkpoint, load_state, save_checkpoint, write_json

PRUNED_STATE = "pruned_state.pt"


def pruned_state(arch: str, num_classes: int, width: float, widths, state: dict, **extra) -> dict:
    """What pruned_state.pt holds: what rebuilds the pruned network, plus `extra` (e.g. config_key)."""
    return dict(arch=arch, num_classes=num_classes, width=width, widths=[int(w) for w in widths], state_dict=state,
                **extra)


def write_pruned_state(out_dir, arch: str, num_classes: int, width: float, widths, state: dict, **extra) -> Path:
    """out_dir/pruned_state.pt, atomically (`pruned_state`)."""
    path = Path(out_dir) / PRUNED_STATE
    save_checkpoint(path, pruned_state(arch, num_classes, width, widths, state, **extra))
    return path


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
    paths = {"state": out / PRUNED_STATE, "widths": out / "widths.json", "pt2": out / "pruned.pt2"}
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
    write_pruned_state(out, arch, num_classes, width, widths, state)
    write_json(paths["widths"], dict(arch=arch, num_classes=num_classes, width=width, widths=widths))
    if export:
        _save_via_temp(paths["pt2"], lambda tmp: torch.export.save(program, tmp))
    return paths


PRUNED_REMEDY = "Pass a pruned_state.pt written by a finished prune run (runs/prune/<run>/), or its folder."


def load_pruned(path) -> nn.Module:
    """Rebuild a pruned model (eval mode) from pruned_state.pt, or from the folder holding it."""
    path = Path(path)
    if path.is_dir():
        path = path / PRUNED_STATE
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


