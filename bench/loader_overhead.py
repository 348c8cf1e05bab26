"""Training throughput of resnet56 on this machine: through our data path vs a bare loop.

Bare loop: one preloaded normalised float batch, reused (no indexing, no augmentation).
Data path: `paper_repro.data.Batches` over a uint8 split on the device (shuffle, batched crop + flip,
normalise). The difference is the loader's overhead. Warm-up steps are excluded from the timing.

    .venv/bin/python bench/loader_overhead.py [--arch resnet56] [--width 1.0] [--batch 128] [--steps 20]
"""
import argparse
import time

import torch
import torch.nn.functional as F

from paper_repro import data as D
from paper_repro.models import build_model
from paper_repro.provenance import device_name, resolve_device

p = argparse.ArgumentParser()
p.add_argument("--arch", default="resnet56")
p.add_argument("--width", type=float, default=1.0)
p.add_argument("--batch", type=int, default=128)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--device", default="auto")
args = p.parse_args()
dev = resolve_device(args.device)
torch.manual_seed(0)
ds = D.make_synthetic(n_train=args.batch * (args.steps + args.warmup), n_test=16).to(dev)


def run(batches):
    model = build_model(args.arch, width=args.width).to(dev).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    n, t0 = 0, None
    for i, (x, y) in enumerate(batches):
        if i == args.warmup:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0, n = time.perf_counter(), 0
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(y)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


batches = D.Batches(ds.train, args.batch, D.MEAN["synthetic"], D.STD["synthetic"], train=True, channels_last=True)
x0, y0 = next(iter(batches))
bare = run([(x0, y0)] * (args.steps + args.warmup))
ours = run(batches)
t0 = time.perf_counter()
for _ in batches:
    pass
loader_only = len(batches) * args.batch / (time.perf_counter() - t0)
print(f"device: {device_name(dev)}  arch: {args.arch} width {args.width}  batch {args.batch}  steps {args.steps}")
print(f"bare loop (preloaded tensor):  {bare:8.1f} img/s")
print(f"paper_repro data path:         {ours:8.1f} img/s  ({100 * (bare / ours - 1):+.1f}% time vs bare)")
print(f"data path alone (no model):    {loader_only:8.0f} img/s")
