"""Cost of the sparsity step (Taylor scores + expected-sparse selection + group prox, all students) as a
fraction of one method training step (teacher forward on every student's view + N student forward/backward
+ SGD), and the allocation solve time. Both use the trainer's own object (`method.Method`: `distill`,
`sparsify`, built as `prune_train` builds it) and `allocate`. Goals (issue 3): sparsity step <= 10% of a
training step; allocation < 1 s.
Warm-up steps excluded; medians over steps.

    .venv/bin/python bench/sparsity_step.py [--arch resnet56] [--width 1.0] [--batch 64] [--students 2]
"""
import argparse
import statistics
import time

import torch

from paper_repro import data as D
from paper_repro.allocation import allocate, parse_target
from paper_repro.counting import CostModel
from paper_repro.method import Method, resolve_method
from paper_repro.models import build_model
from paper_repro.provenance import device_name, resolve_device

p = argparse.ArgumentParser()
p.add_argument("--arch", default="resnet56")
p.add_argument("--width", type=float, default=1.0)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--students", type=int, default=2)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--target", default="flops=0.6")
p.add_argument("--device", default="auto")
args = p.parse_args()
dev = resolve_device(args.device)
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
torch.manual_seed(0)
net = build_model(args.arch, width=args.width).to(dev).to(memory_format=torch.channels_last)
cm = CostModel(net)
t0 = time.perf_counter()
alloc = allocate(cm, cm.widths, parse_target(args.target))
alloc_first = time.perf_counter() - t0
ds = D.make_synthetic(n_train=args.batch * (args.warmup + args.steps), n_test=16).to(dev)
batches = D.Batches(ds.train, args.batch, D.MEAN["synthetic"], D.STD["synthetic"], train=True,
                    channels_last=True, views=args.students)
cfg = resolve_method(args.arch, args.target, "paper", students=args.students, width=args.width,
                     batch_size=args.batch)
method = Method(net, cfg, cm, parse_target(args.target), len(batches))
method.begin_epoch(0)
train_t, sparse_t = [], []
for step, (x, y) in enumerate(batches):
    sync()
    a = time.perf_counter()
    method.distill(x, y)
    sync()
    b = time.perf_counter()
    method.sparsify()
    sync()
    c = time.perf_counter()
    if step >= args.warmup:
        train_t.append(b - a)
        sparse_t.append(c - b)
alive = [max(1, w // 2) for w in cm.widths]
times = []
for _ in range(5):
    t0 = time.perf_counter()
    allocate(cm, alive, parse_target(args.target))
    times.append(time.perf_counter() - t0)
tr, sp = statistics.median(train_t), statistics.median(sparse_t)
print(f"device: {device_name(dev)}  arch: {args.arch} width {args.width}  batch {args.batch}  "
      f"students {args.students}  steps {len(train_t)} (+{args.warmup} warm-up)")
print(f"training step (teacher on {args.students} views + {args.students} students, fwd/bwd/SGD): {1000 * tr:8.1f} ms")
print(f"sparsity step (Taylor + selection + prox, all students):             {1000 * sp:8.1f} ms"
      f"  = {100 * sp / tr:.1f}% of a training step (goal <= 10%)")
print(f"allocation solve ({len(cm.widths)} layers): median {1000 * statistics.median(times):.1f} ms "
      f"(first call {1000 * alloc_first:.1f} ms; goal < 1000 ms)")
