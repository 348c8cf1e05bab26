"""Atomic writes and validated checkpoints: nothing half-written, nothing loaded silently wrong.

Files get the modes of any other tool (0666 less the umask: 0644 usually), so a shared results or runs/ folder
can be read by colleagues. A write that fails (disk full, read-only folder, a file-size limit) is an OSError
naming the file; its temporary file is removed, and one left by a killed process is removed by the next writer
of that folder (`remove_stale_temps`, called when a run folder is locked)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from .provenance import ROOT

CHECKPOINT_FORMAT = "paper_repro.checkpoint/1"
DIGESTS = "digests.json"  # a committed record's sha256 of each file it published (`write_digests`, `check_digests`)
DIGESTS_FORMAT = "paper_repro.digests/1"
_IMPORTED = time.time()


class CheckpointError(RuntimeError):
    pass


def current_umask() -> int:
    """The process's umask (Linux: read from /proc, which changes nothing; else set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, write_fn, mode="wb") -> Path:
    """Write via a temporary file in the same folder, then rename over `path` (atomic on POSIX)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(f"{path}: cannot write ({e.strerror or e})") from e
    try:
        with os.fdopen(fd, mode) as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())  # mkstemp makes 0600 files
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        _unlink(tmp)
        if isinstance(e, OSError):
            raise OSError(f"{path}: cannot write ({e.strerror or e})") from e
        if isinstance(e, RuntimeError) and any(m in str(e) for m in _TORCH_WRITE_FAILED):
            raise OSError(f"{path}: cannot write (the file was cut short: disk full, or a file-size limit?)") from e
        raise
    return path


# How torch.save reports a write that the OS refused (it does not pass the OSError on).
_TORCH_WRITE_FAILED = ("enforce fail at inline_container", "PytorchStreamWriter", "file write failed")


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# The package's own temporary names; `remove_stale_temps` removes these and nothing else.
TEMP_NAMES = (
    re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$"),  # atomic_write: .<name>.<mkstemp's 8 characters>.tmp
    re.compile(r"^\..+\.\d+\.tmp\.\w+$"),  # surgery._save_via_temp: .<stem>.<pid>.tmp.<suffix>
    re.compile(r"^\.\d\d_.+\.ipynb\.tmp\.ipynb$"),  # reproduce: .<NN_name>.ipynb.tmp.ipynb
)


def process_start_time() -> float:
    """When this process started (seconds since the epoch): from /proc on Linux, else this module's import."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return min(_IMPORTED, boot + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


def remove_stale_temps(folder) -> list[Path]:
    """Remove the package's temporary files in `folder` (not below it) that are older than this process: what
    a killed write left behind. Call it only while holding the folder's lock (no other writer is in it)."""
    start, removed = process_start_time(), []
    try:
        entries = list(Path(folder).iterdir())
    except FileNotFoundError:
        return removed
    for p in entries:
        if any(r.match(p.name) for r in TEMP_NAMES) and p.is_file() and p.stat().st_mtime < start:
            _unlink(p)
            removed.append(p)
    return removed


def write_bytes(path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def write_text(path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text), mode="w")


def json_bytes(obj) -> bytes:
    """What `write_json` writes for `obj`, as bytes (to digest a record before it is written)."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()


def write_json(path, obj) -> Path:
    return write_text(path, json_bytes(obj).decode())


def save_checkpoint(path, payload: dict) -> Path:
    payload = dict(payload, format=CHECKPOINT_FORMAT)
    return atomic_write(path, lambda f: torch.save(payload, f))


def checkpoint_bytes(payload: dict) -> bytes:
    """What `save_checkpoint` writes for `payload`, as bytes (to digest a record before it is written)."""
    buf = io.BytesIO()
    torch.save(dict(payload, format=CHECKPOINT_FORMAT), buf)
    return buf.getvalue()


# -- committed records: paths, named JSON, digests ------------------------------------------------------------------
def repo_path(path) -> str | None:
    """`path` relative to the checkout (posix), for a record to name a file by: None when it lies outside it (a
    record never holds an absolute path: a clone elsewhere, or a shared cache, would read a stranger's)."""
    try:
        return Path(path).resolve().relative_to(ROOT.resolve()).as_posix()
    except ValueError:
        return None


def restore_remedy(path) -> str:
    """What to do about a damaged or missing committed file: take it back from git (never retrain over it)."""
    return f"Restore it with `git checkout -- {repo_path(path) or path}`"


def read_json(path, remedy: str | None = None):
    """The JSON in `path`; a missing or malformed file is one CheckpointError naming it, where the parser failed,
    and `remedy` (default: restore it from git, as for a committed record). Read store files with this before any
    training starts, so that a damaged record stops a call at once, not hours later."""
    path = Path(path)
    remedy = remedy or restore_remedy(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found. {remedy}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cannot be read ({getattr(e, 'strerror', None) or e}). {remedy}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e.msg}, line {e.lineno} column {e.colno}). {remedy}") from None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_digests(folder, digests: dict[str, str]) -> Path:
    """folder/digests.json: {file name: sha256} of the files a publish writes (the finished marker's included,
    digested before it is written: the marker comes last)."""
    return write_json(Path(folder) / DIGESTS, {"format": DIGESTS_FORMAT, "sha256": dict(sorted(digests.items()))})


def check_digests(folder) -> str:
    """Check every file folder/digests.json names against its recorded sha256: one CheckpointError naming the
    first file that is missing or differs (hand-edited, cut short) and how to restore it. Returns 'checked', or
    'legacy: no digests recorded' for a record published before digests were kept (accepted as it is)."""
    folder = Path(folder)
    if not (folder / DIGESTS).exists():
        return "legacy: no digests recorded"
    rec = read_json(folder / DIGESTS)
    if not isinstance(rec, dict) or rec.get("format") != DIGESTS_FORMAT or not isinstance(rec.get("sha256"), dict):
        raise CheckpointError(f"{folder / DIGESTS}: not a digests record (format {DIGESTS_FORMAT!r} expected). "
                              f"{restore_remedy(folder / DIGESTS)}")
    for name, want in rec["sha256"].items():
        path = folder / name
        if not path.exists():
            raise CheckpointError(f"{path}: missing from a published record ({DIGESTS} names it). "
                                  f"{restore_remedy(path)}")
        got = sha256_file(path)
        if got != want:
            raise CheckpointError(f"{path}: not the file that was published (sha256 {got[:12]}, {DIGESTS} records "
                                  f"{want[:12]}): edited or cut short. {restore_remedy(path)}")
    return "checked"


def copy_if_further(src, dst, expect: dict | None = None, remedy: str | None = None) -> bool:
    """Copy the resumable checkpoint `src` to `dst` (atomically) unless `dst` already holds the same run
    (config_key) at the same or a later epoch: how a state carried in the repository seeds a new machine's run
    folder. True when copied. A `src` that fails `expect` is a CheckpointError ending `remedy`."""
    src, dst = Path(src), Path(dst)
    if not src.exists():
        return False
    carried = load_checkpoint(src, expect=expect, remedy=remedy)
    if dst.exists():
        local = load_checkpoint(dst, expect=expect)
        if local.get("config_key") == carried.get("config_key") and local.get("epoch", 0) >= carried.get("epoch", 0):
            return False
    write_bytes(dst, src.read_bytes())
    return True


# The remedy for a file the user gave (e.g. --teacher): theirs to keep, so never "delete it".
TEACHER_REMEDY = ("Pass a baseline checkpoint.pt of this arch and width (runs/baselines/<run>/checkpoint.pt, "
                  "written by `python -m paper_repro train`), or leave out --teacher to use the cached baseline.")


def _run_file_remedy(path) -> str:
    return f"Delete it (rm '{path}') to start that run again, or point to the right file."


def _why_unreadable(e: Exception, path: Path | None = None) -> str:
    """What a failed torch.load says, in words (not PyTorch's weights_only notice, which misleads here)."""
    msg = str(e)
    if isinstance(e, IsADirectoryError):
        return "a folder, not a file"
    if isinstance(e, OSError):
        return e.strerror or msg
    if "PytorchStreamReader" in msg or "zip archive" in msg:
        return "a damaged or truncated PyTorch file"
    if isinstance(e, EOFError):
        return "truncated"
    # save_checkpoint writes zip archives: other bytes make the legacy unpickler fail in any way (UnpicklingError,
    # IndexError, KeyError, ... depending on the bytes), all of which mean the same thing
    if "Weights only load failed" in msg or type(e).__name__ == "UnpicklingError" or (
            path is not None and path.is_file() and not zipfile.is_zipfile(path)):
        return "not a PyTorch checkpoint (random or damaged bytes, or another format)"
    return f"{type(e).__name__}: {(msg.strip().splitlines() or [''])[0][:160]}"


def load_checkpoint(path, expect: dict | None = None, map_location="cpu", remedy: str | None = None) -> dict:
    """Load a checkpoint written by `save_checkpoint` and check that `expect`'s fields match.

    Any failure raises CheckpointError naming the file and what to do: never a silent retrain over it.
    `remedy`: what to do about a bad file (default: delete it, for files a run wrote itself)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: not found." + (f" {remedy}" if remedy else ""))
    remedy = remedy or _run_file_remedy(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({_why_unreadable(e, path)}). {remedy}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a paper_repro checkpoint (format {CHECKPOINT_FORMAT!r} expected). {remedy}")
    for k, v in (expect or {}).items():
        if ckpt.get(k) != v:
            raise CheckpointError(f"{path}: checkpoint has {k}={ckpt.get(k)!r} but {v!r} was expected. {remedy}")
    return ckpt


def load_state(model: torch.nn.Module, state: dict, path, remedy: str | None = None) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the model ({first}). "
                              f"{remedy or _run_file_remedy(path)}") from None
