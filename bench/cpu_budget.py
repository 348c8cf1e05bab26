"""One method run on a committed cpu teacher at a candidate student budget, for sizing the cpu profile (issue 11).

Prints one JSON line and appends it to bench/results/cpu_budget.jsonl: the overrides tried, wall and training
seconds, the teacher's and the pruned students' accuracy on all 10,000 test images, the ratio reached and, per
epoch and student, (epoch, FLOPs pruned, params pruned, accuracy on the fixed 2,000-image curve subset). Runs go
to build/tune/runs (the project's runs/ cache is never touched). These are measurements of what a budget
can do, not results (`train_s`: the training's seconds as recorded when it ran; `call_s`: this call, short
when the run was cached): the cpu profile's numbers come from `make reproduce`. The reported student is chosen
without labels (teacher agreement), as in every run; the test accuracy only measures the budget.

    OMP_NUM_THREADS=1 .venv/bin/python bench/cpu_budget.py ARCH TARGET THREADS '{"epochs": 6, "train_subset": 20000}'
    .venv/bin/python bench/cpu_budget.py --table   # every record as a Markdown table (docs/profiles.md)
"""
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package
os.environ.setdefault("PAPER_REPRO_PROGRESS", "0")
import paper_repro.engine as E  # noqa: E402
from paper_repro.mdtable import md_table  # noqa: E402
from paper_repro.method import prune_train  # noqa: E402
from paper_repro.provenance import device_name, git_commit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "cpu_budget.jsonl"


def main(arch: str, target: str, threads: int, over: dict) -> dict:
    os.chdir(ROOT)  # the teacher's path is recorded in the run's settings (its cache key): always the same one
    E.RUNS = Path("build/tune/runs")
    torch.set_num_threads(threads)
    teacher = Path("teachers/cpu") / f"{arch}-s0" / "teacher.pt"
    t0 = time.time()
    seed = over.pop("seed", 0)
    r = prune_train(arch, target, "cpu", seed, device="cpu", teacher=teacher, progress=False, export=False, **over)
    s = r.summary
    out = dict(arch=arch, target=target, seed=seed, overrides=over, students=s["students"], epochs=s["epochs"],
               train_images=r.config["baseline"]["train_subset"] or "all", lambda_max=r.config["lambda_max"],
               call_s=round(time.time() - t0), train_s=round(s["train_seconds"]), baseline_acc=s["baseline_acc"],
               pruned_acc=s["pruned_acc"], pruned_acc_all=s["pruned_acc_all"],
               delta_points=round(100 * (s["pruned_acc"] - s["baseline_acc"]), 2),
               flops_pruned=round(s["flops_pruned"], 4), params_pruned=round(s["params_pruned"], 4),
               target_met=s["target_met"], test_images=s["test_images"],
               # label-free: the reported student's agreement with the teacher on held-out training images, the
               # signal a budget may be chosen on (the test accuracy above only measures it)
               select_teacher_agreement=s["per_student"][s["best_student"]]["select_teacher_agreement"],
               per_epoch=[(m["epoch"], m["student"], round(m["flops_pruned"], 3), round(m["params_pruned"], 3),
                           round(m["curve_acc"], 4)) for m in r.metrics],
               device=device_name(torch.device("cpu")), commit=git_commit(), dataset_official=s["dataset_official"])
    line = json.dumps(out)
    print(line, flush=True)
    with open(OUT, "a") as f:
        f.write(line + "\n")
    return out


def table() -> str:
    """Every record of cpu_budget.jsonl as Markdown, grouped by network and budget (main: 10,000 images)."""
    rows = [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: (r["arch"], r["train_images"], r["epochs"], -r["overrides"].get("lr", 0.05)))
    header = ["network, target", "images × epochs, λ_max", "student lr", "Δ vs teacher (points)", "pruned acc",
              "ratio reached", "target met", "teacher agreement (label-free)", "train s"]
    out = []
    for r in rows:
        ratio = r["flops_pruned"] if r["target"].startswith("flops") else r["params_pruned"]
        agree = r.get("select_teacher_agreement")
        out.append([f"{r['arch']} {r['target']}", f"{r['train_images']:,} × {r['epochs']}, {r['lambda_max']:g}",
                    f"{r['overrides'].get('lr', 0.05):g}", f"{r['delta_points']:+.2f}",
                    f"{100 * r['pruned_acc']:.2f}%", f"{100 * ratio:.2f}%", "yes" if r["target_met"] else "no",
                    "—" if agree is None else f"{agree:.4f}", r["train_s"]])
    return "\n".join(md_table(header, out))


if __name__ == "__main__":
    if sys.argv[1:] == ["--table"]:
        print(table())
        sys.exit(0)
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]))
