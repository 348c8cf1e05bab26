"""Which LR lets the distilled same-FLOPs control learn? A label-free probe (issue 23, `control-distill`).

The control's students start from random weights (the method's start as copies of the teacher), so the method's
LR says nothing about theirs. For each candidate LR this trains the control exactly as `make paper-width` would
(`paper_width`'s settings for `control-distill`: the uniform narrow widths, N = 2, the same label-free loss from
the committed paper-width teacher, no penalty) for `--steps` SGD steps from the same start, and every `--every`
steps measures each student's **agreement with the teacher's predicted class** on a fixed probe of 256 training
images (a fifth augmented epoch's first batches). Teacher agreement needs no label and no test image, so the LR it
picks is chosen without labels (as `method.select_student` picks a student). Prints one JSON line per LR and
appends it to bench/results/control_lr_probe.jsonl with the device and commit. A short probe, not a result: the
run itself is trained and measured by `make paper-width`.

    OMP_NUM_THREADS=1 .venv/bin/python bench/control_lr_probe.py --lrs 0.1,0.05,0.02,0.01 --steps 200
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package
os.environ.setdefault("PAPER_REPRO_PROGRESS", "0")
from paper_repro.allocation import parse_target  # noqa: E402
from paper_repro.counting import CostModel  # noqa: E402
from paper_repro.engine import prepare_data, train_batches  # noqa: E402
from paper_repro.method import Method, resolve_method  # noqa: E402
from paper_repro.models import build_model  # noqa: E402
from paper_repro.provenance import device_name, git_commit  # noqa: E402
from paper_repro.reproduction import paper_width as P  # noqa: E402
from paper_repro.train import train_baseline  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "control_lr_probe.jsonl"


def probe(lr: float, steps: int, every: int, profile: str = "cpu", run: str = "control-distill") -> dict:
    s = P.study(profile)
    teacher = train_baseline(s["arch"], profile, 0, allow_training=False, progress=False, **s["teacher"])
    cfg = resolve_method(s["arch"], s["target"], profile, 0,
                         **{**P._method_overrides(P.runs(profile)[run], profile), "lr": lr})
    b, dev = cfg["baseline"], torch.device("cpu")
    _, train_split, _ = prepare_data(b, dev, None, False)
    batches = train_batches(train_split, b, cfg["seed"] + 17, views=cfg["students"])
    method = Method(teacher.model, cfg, CostModel(build_model(s["arch"], width=s["width"])),
                    parse_target(s["target"]), len(batches))
    shown = []
    for x, _ in batches.set_epoch(5):  # the probe: images the first steps do not train on in this order
        shown.append(x[0] if isinstance(x, (list, tuple)) else x)
        if sum(len(v) for v in shown) >= 256:
            break
    shown = torch.cat(shown)[:256]
    with torch.no_grad():
        teacher_class = method.teacher.eval()(shown).argmax(1)
    method.begin_epoch(0)
    curve, t0 = [], time.perf_counter()
    for k, (x, y) in enumerate(batches.set_epoch(0)):
        if k == steps:
            break
        method.step(x, y)  # `y` is never read by the label-free loss
        if (k + 1) % every == 0:
            agree = []
            with torch.no_grad():
                for st in method.students:
                    st.eval()
                    agree.append(round((st(shown).argmax(1) == teacher_class).float().mean().item(), 4))
                    st.train()
            curve.append(dict(step=k + 1, teacher_agreement=agree))
    return dict(run=run, lr=lr, steps=steps, probe_images=len(shown), curve=curve,
                final_mean_agreement=round(sum(curve[-1]["teacher_agreement"]) / len(method.students), 4),
                seconds=round(time.perf_counter() - t0, 1), device=device_name(dev), commit=git_commit(),
                torch=torch.__version__, when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lrs", default="0.1,0.05,0.02,0.01", help="comma-separated candidate LRs")
    ap.add_argument("--steps", type=int, default=200, help="SGD steps per LR (batch 64)")
    ap.add_argument("--every", type=int, default=25, help="measure the agreement every this many steps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-record", action="store_true", help=f"print only; do not append to {OUT.name}")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    for lr in (float(v) for v in a.lrs.split(",")):
        rec = probe(lr, a.steps, a.every)
        print(json.dumps(rec), flush=True)
        if not a.no_record:
            with open(OUT, "a") as f:  # one line per LR, written whole
                f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
