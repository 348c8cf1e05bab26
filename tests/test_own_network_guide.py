"""docs/own_network.md runs as written (issue 37): its python blocks, in order, in one fresh process, on the smoke
profile, with runs/ in a temporary folder: a network of the reader's own registered, its teacher trained, pruned by
the method, and the pruned network loaded back (from pruned_state.pt and from the torch.export program)."""
import os
import re
import subprocess
import sys

from paper_repro.provenance import ROOT

GUIDE = ROOT / "docs" / "own_network.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def guide_blocks() -> list[str]:
    return BLOCK.findall(GUIDE.read_text())


def test_the_guide_has_its_worked_example():
    code = "\n".join(guide_blocks())
    assert "@register_model" in code and "train_baseline(" in code and "prune_train(" in code
    assert "load_pruned(" in code and "torch.export.load(" in code
    assert 'profile="cpu"' not in code  # a new network has no committed cpu teacher: the runnable example is smoke's


def test_the_guide_runs_as_written(tmp_path):
    """A fresh interpreter (the registration stays out of this one), cwd and runs/ in tmp_path; one thread."""
    script = tmp_path / "guide.py"
    script.write_text("\n\n".join(guide_blocks()))
    env = {**os.environ, "PAPER_REPRO_PROFILE": "smoke", "PAPER_REPRO_RUNS": str(tmp_path / "runs"),
           "PAPER_REPRO_PROGRESS": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "target met: True" in done.stdout, done.stdout
    runs = tmp_path / "runs"
    assert [p.name.split("-")[0] for p in (runs / "baselines").iterdir()] == ["net"]
    (prune_dir,) = (runs / "prune").iterdir()
    assert {"pruned_state.pt", "pruned.pt2", "widths.json", "summary.json"} <= {p.name for p in prune_dir.iterdir()}
    assert (tmp_path / "net_last_student" / "pruned_state.pt").exists()
