"""Atomic writes and validated checkpoints: nothing half-written, nothing loaded silently wrong."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

CHECKPOINT_FORMAT = "paper_repro.checkpoint/1"


class CheckpointError(RuntimeError):
    pass


def atomic_write(path, write_fn, mode="wb") -> Path:
    """Write via a temporary file in the same folder, then rename over `path` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text(path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text), mode="w")


def write_json(path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_checkpoint(path, payload: dict) -> Path:
    payload = dict(payload, format=CHECKPOINT_FORMAT)
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path, expect: dict | None = None, map_location="cpu") -> dict:
    """Load a checkpoint written by `save_checkpoint` and check that `expect`'s fields match.

    Any failure raises CheckpointError naming the file and what to do: never a silent retrain over it."""
    path = Path(path)
    remedy = f"Delete it (rm '{path}') to start that run again, or point to the right file."
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        why = (str(e).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {why}). {remedy}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a paper_repro checkpoint (format {CHECKPOINT_FORMAT!r} expected). {remedy}")
    for k, v in (expect or {}).items():
        if ckpt.get(k) != v:
            raise CheckpointError(f"{path}: checkpoint has {k}={ckpt.get(k)!r} but {v!r} was expected. {remedy}")
    return ckpt


def load_state(model: torch.nn.Module, state: dict, path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the model ({first}). "
                              f"Delete it (rm '{path}') to start that run again, or point to the right file.") from None
