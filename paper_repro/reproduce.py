"""`make reproduce`: run every numbered notebook with papermill, skipping those whose inputs did not change.

A notebook's inputs are its code cells, the package sources and the profile; their hash is kept in
build/stamps/<profile>/. The executed copy goes to notebooks/executed/<profile>/ for reading; trained
models are cached separately (runs/), so a rerun after a code change retrains only what changed."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from .config import ENV_PROFILE, check_profile
from .provenance import ROOT
from .report import ENV_NOTEBOOK, ENV_OUTPUTS, write_index
from .train import ENV_PROGRESS

NOTEBOOKS = ROOT / "notebooks"


def notebook_paths(names=None) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if names:
        valid = {p.stem: p for p in paths}
        bad = [n for n in names if Path(n).stem not in valid]
        if bad:
            raise ValueError(f"notebooks: unknown {bad}; valid: {', '.join(valid)}")
        paths = [valid[Path(n).stem] for n in names]
    return paths


def inputs_hash(nb_path: Path, profile: str) -> str:
    h = hashlib.sha256(profile.encode())
    cells = json.loads(nb_path.read_text())["cells"]
    for c in cells:
        if c["cell_type"] == "code":
            h.update("".join(c["source"]).encode())
    for src in sorted((ROOT / "paper_repro").rglob("*.py")):
        h.update(src.relative_to(ROOT).as_posix().encode())
        h.update(src.read_bytes())
    return h.hexdigest()


def run_notebooks(profile: str = "cpu", names=None, force: bool = False) -> None:
    import papermill as pm

    check_profile(profile)
    out_dir = NOTEBOOKS / "executed" / profile
    stamp_dir = ROOT / "build" / "stamps" / profile
    stamp_dir.mkdir(parents=True, exist_ok=True)
    for nb in notebook_paths(names):
        digest = inputs_hash(nb, profile)
        stamp = stamp_dir / f"{nb.stem}.sha256"
        out = out_dir / nb.name
        if not force and out.exists() and stamp.exists() and stamp.read_text() == digest:
            print(f"[reproduce] {nb.name}: inputs unchanged, skipped", flush=True)
            continue
        print(f"[reproduce] {nb.name}: running with profile={profile}", flush=True)
        t0 = time.perf_counter()
        os.environ[ENV_PROFILE] = profile
        os.environ[ENV_NOTEBOOK] = f"notebooks/{nb.name}"
        os.environ[ENV_OUTPUTS] = "committed"
        os.environ[ENV_PROGRESS] = "0"  # the executed copies carry no progress bars (stderr renders like errors)
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp.ipynb")  # an interrupted run never leaves a half-executed copy
        pm.execute_notebook(str(nb), str(tmp), parameters={"profile": profile}, kernel_name="python3",
                            cwd=str(NOTEBOOKS), progress_bar=False)
        os.replace(tmp, out)
        stamp.write_text(digest)
        print(f"[reproduce] {nb.name}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    write_index(profile)
