"""Cost of the sparsity step (Taylor scores + expected-sparse selection + group prox) relative to one
method training step (teacher forward + N student forward/backward + SGD), and the allocation solve time.
Goals (issue 3): sparsity step <= 10% of a training step; allocation < 1 s. Warm-up excluded.

    .venv/bin/python bench/sparsity_step.py [--arch resnet56] [--width 1.0] [--batch 64] [--students 2]
"""
import argparse
import copy
import time

import torch

from paper_repro.allocation import allocate, parse_target
from paper_repro.counting import CostModel
from paper_repro.ista import group_prox_
from paper_repro.losses import FeatureTaps, feature_loss, kd_loss, mutual_loss
from paper_repro.models import build_model
from paper_repro.provenance import device_name, resolve_device
from paper_repro.sensitivity import channel_scores, smallest_mask

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
sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
torch.manual_seed(0)
teacher = build_model(args.arch, width=args.width).to(dev).to(memory_format=torch.channels_last).eval()
students = [copy.deepcopy(teacher).train() for _ in range(args.students)]
t_taps, s_taps = FeatureTaps(teacher), [FeatureTaps(s) for s in students]
opt = torch.optim.SGD([p for s in students for p in s.parameters()], lr=0.1, momentum=0.9, weight_decay=1e-4)
groups = [s.channel_groups() for s in students]
cm = CostModel(teacher)
t0 = time.perf_counter()
alloc = allocate(cm, cm.widths, parse_target(args.target))
alloc_first = time.perf_counter() - t0
m_sparse = [c - k for c, k in zip(cm.widths, alloc.keep)]
x = torch.randn(args.batch, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
train_t, sparse_t = 0.0, 0.0
for step in range(args.warmup + args.steps):
    sync()
    a = time.perf_counter()
    with torch.no_grad():
        zt = teacher(x)
    tf = dict(t_taps.out)
    zs = [s(x) for s in students]
    loss = sum(kd_loss(zs[i], zt) + feature_loss(s_taps[i].out, tf) + mutual_loss(zs[i], zs[:i] + zs[i + 1:])
               for i in range(len(students)))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sync()
    b = time.perf_counter()
    for gs in groups:
        for g, m in zip(gs, m_sparse):
            group_prox_(g, smallest_mask(channel_scores(g, "taylor"), m), 1e-4)
    sync()
    c = time.perf_counter()
    if step >= args.warmup:
        train_t += b - a
        sparse_t += c - b
alive = [max(1, w // 2) for w in cm.widths]
t0 = time.perf_counter()
for _ in range(5):
    allocate(cm, alive, parse_target(args.target))
alloc_t = (time.perf_counter() - t0) / 5
print(f"device: {device_name(dev)}  arch: {args.arch} width {args.width}  batch {args.batch}  students {args.students}")
print(f"training step (teacher + {args.students} students, fwd/bwd/SGD): {1000 * train_t / args.steps:8.1f} ms")
print(f"sparsity step (Taylor + selection + prox, all students):  {1000 * sparse_t / args.steps:8.1f} ms"
      f"  = {100 * sparse_t / train_t:.1f}% of a training step (goal <= 10%)")
print(f"allocation solve ({len(cm.widths)} layers): {1000 * alloc_t:.1f} ms (first call {1000 * alloc_first:.1f} ms; goal < 1000 ms)")
