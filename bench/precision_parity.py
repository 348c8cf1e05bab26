"""bf16 against fp32 on the CPU, before any committed bf16 run (issue 38): the reduced-budget resnet56 method arm
(notebook 02's row: the committed width-0.5 teacher, 10,000 training images, 3 epochs, flops=0.60, N = 2) trained
with each precision for each seed, then the pruned networks' accuracy on all 10,000 test images and the pruned
ratios, side by side. Precision changes the run's cache key, so each (seed, precision) is its own run in runs/prune
(trained, or read from the cache when it exists). Seed 0 learns from the profile's own teacher, as notebook 02's row
does; the other seeds have no committed teacher of their own, so their students learn from the seed-0 teacher's
checkpoint (the seed then changes the students' data subset, augmentation and initial selection, not the teacher).

Verdict rule: bf16 is at parity when the mean accuracy over seeds differs from fp32's by less than 2 standard errors
of that difference (seed-to-seed spread of both precisions), and the mean FLOPs ratio by less than 0.5 point.
Prints a table and appends one JSON line to bench/results/precision_parity.jsonl.

    OMP_NUM_THREADS=1 .venv/bin/python bench/precision_parity.py [--seeds 0,1,2] [--threads 1] [--no-record]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package
from paper_repro.method import prune_train  # noqa: E402
from paper_repro.mdtable import md_table  # noqa: E402
from paper_repro.provenance import NATIVE_BF16_FLAGS, cpu_flags, device_name, git_commit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "precision_parity.jsonl"
ARCH, TARGET, PROFILE = "resnet56", "flops=0.60", "cpu"
TEACHER = "teachers/cpu/resnet56-s0/teacher.pt"  # relative: the path is in the run's key (issue 35 removes it)

p = argparse.ArgumentParser()
p.add_argument("--seeds", default="0,1,2")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--no-record", action="store_true")
args = p.parse_args()
os.chdir(ROOT)
torch.set_num_threads(args.threads)

rows = []
for precision in ("fp32", "bf16"):
    for seed in map(int, args.seeds.split(",")):
        t0 = time.time()
        r = prune_train(ARCH, TARGET, PROFILE, seed, device="cpu", teacher=None if seed == 0 else TEACHER,
                        precision=None if precision == "fp32" else precision, progress=False)
        s = r.summary
        rows.append(dict(precision=precision, seed=seed, pruned_acc=s["pruned_acc"], pruned_acc_mean=s["pruned_acc_mean"],
                         flops_pruned=s["flops_pruned"], params_pruned=s["params_pruned"], target_met=s["target_met"],
                         train_seconds=round(s["train_seconds"]), device=s["device"], run=r.run_dir.name,
                         call_s=round(time.time() - t0)))


def mean_sd(key, precision):
    v = [r[key] for r in rows if r["precision"] == precision]
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else float("nan")), len(v)


(a32, s32, n), (a16, s16, _) = mean_sd("pruned_acc", "fp32"), mean_sd("pruned_acc", "bf16")
se = math.sqrt(s32 ** 2 / n + s16 ** 2 / n)
f32, f16 = mean_sd("flops_pruned", "fp32")[0], mean_sd("flops_pruned", "bf16")[0]
t32, t16 = mean_sd("train_seconds", "fp32")[0], mean_sd("train_seconds", "bf16")[0]
parity = abs(a16 - a32) < 2 * se and abs(f16 - f32) < 0.005
print("\n".join(md_table(["precision", "seed", "pruned acc %", "mean of students %", "FLOPs pruned %",
                          "params pruned %", "target met", "train s"],
                         [[r["precision"], r["seed"], f"{100 * r['pruned_acc']:.2f}", f"{100 * r['pruned_acc_mean']:.2f}",
                           f"{100 * r['flops_pruned']:.2f}", f"{100 * r['params_pruned']:.2f}", r["target_met"],
                           r["train_seconds"]] for r in rows])))
print(f"\nfp32 {100 * a32:.2f} ± {100 * s32:.2f} (sd over {n} seeds), bf16 {100 * a16:.2f} ± {100 * s16:.2f}; "
      f"bf16 − fp32 = {100 * (a16 - a32):+.2f} ± {100 * 2 * se:.2f} points (2 SE); FLOPs {100 * f32:.2f}% vs "
      f"{100 * f16:.2f}%; training {t32:.0f} s vs {t16:.0f} s ({t32 / t16:.2f}x); parity: {parity}")
record = dict(bench="precision_parity", when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), arch=ARCH,
              target=TARGET, profile=PROFILE, rows=rows, acc_diff_points=round(100 * (a16 - a32), 3),
              acc_diff_2se_points=round(200 * se, 3), flops_diff_points=round(100 * (f16 - f32), 3),
              train_speedup=round(t32 / t16, 3), parity=parity, device=device_name(torch.device("cpu")),
              native_bf16_flags=sorted(cpu_flags() & set(NATIVE_BF16_FLAGS)), torch=torch.__version__,
              commit=git_commit())
if not args.no_record:
    with open(OUT, "a") as f:
        f.write(json.dumps(record) + "\n")
