"""Seconds per epoch (50,000 images) of plain training and of the method, per network, on this machine.

Plain: one network, cross-entropy, SGD. Method: frozen teacher + N students (KD + features + mutual),
one SGD step, then Taylor scores + expected-sparse selection + group prox for every student, exactly the
code `prune_train` runs (its `method.Method`: `step`, `distill`). Data: a 50,000-image uint8 split held on the
device with batched crop + flip (`paper_repro.data.Batches`); pixel values do not change the timing, so a
synthetic split stands in and no dataset is needed. Warm-up steps are excluded; every timed epoch ends with
a device sync. The sparsity step is timed directly inside the method's timed steps: CUDA events around each
`Method.sparsify` call on a GPU (no extra host sync, so the step keeps its overlap), the wall clock on a CPU
(where every op is synchronous); its share is its seconds over the method epoch's. Peak memory is the CUDA
allocator's peak; a CPU has no such counter, so it prints "n/a". Each network's numbers are printed and appended
as one JSON line to bench/results/epoch_time.jsonl (device, torch, settings, commit). `--compile` times each listed
mode: `eager`, or a torch.compile mode applied as the trainers apply it (`engine.compiled` on the plain loss,
on `method.distill_losses` through the `compile` setting); compile time falls in the untimed warm-up. Goals
(issue 5, one H100): plain resnet56 <= 2 s/epoch, method <= 3.5x plain. `--precisions` times each listed
precision of the training passes (config.PRECISIONS: auto = bf16 on a GPU, fp32 on a CPU; bf16 autocast with fp32
weights and BatchNorm, as a bf16 run trains) and `--formats` each memory format (channels_last, contiguous), so the
format and precision of a network's committed runs are chosen by measurement; every record names both, and on a CPU
the processor's native bf16 flags (avx512_bf16, amx_bf16; a bf16 time without them is PyTorch's emulation).

    .venv/bin/python bench/epoch_time.py [--archs resnet56,vgg_small,mobilenetv2] [--widths 1.0,0.5] [--batch 64]
        [--students 2] [--threads N] [--steps N (time N steps, scale to an epoch)] [--compile eager,reduce-overhead]
        [--precisions fp32,bf16] [--formats channels_last,contiguous] [--no-record]
    .venv/bin/python bench/epoch_time.py --table   # every record as a Markdown table (docs/profiles.md cites it)

On a CPU the record also carries the 1-minute load average before and after the network's timing: a load above
the bench's own threads means another process shared the cores (the committed runs train as two lanes of one
thread, so "one thread beside another lane" is the cost they pay; a quiet machine's numbers are not).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import time

import torch
import torch.nn.functional as F

from paper_repro import data as D
from paper_repro.allocation import parse_target
from paper_repro.counting import CostModel
from paper_repro.engine import compiled, plain_loss
from paper_repro.mdtable import md_table
from paper_repro.method import Method, resolve_method
from paper_repro.models import build_model
from paper_repro.provenance import NATIVE_BF16_FLAGS, ROOT, cpu_flags, device_name, git_commit, resolve_device

TARGETS = {"resnet56": "flops=0.6", "vgg_small": "params=0.93", "mobilenetv2": "flops=0.667"}

p = argparse.ArgumentParser()
p.add_argument("--archs", default="resnet56,vgg_small,mobilenetv2")
p.add_argument("--widths", default="1.0", help="comma-separated width multipliers (1.0: the paper's network)")
p.add_argument("--batch", type=int, default=64)
p.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's, one per core)")
p.add_argument("--students", type=int, default=2)
p.add_argument("--images", type=int, default=50_000)
p.add_argument("--steps", type=int, default=None, help="time this many steps and scale to a full epoch")
p.add_argument("--warmup", type=int, default=30)
p.add_argument("--device", default="auto")
p.add_argument("--compile", default="eager", help="comma-separated: eager and/or torch.compile modes")
p.add_argument("--precisions", default="auto", help="comma-separated: auto, fp32, bf16 (config.PRECISIONS)")
p.add_argument("--formats", default="channels_last", help="comma-separated: channels_last, contiguous")
p.add_argument("--no-record", action="store_true", help="print only; do not append to bench/results/epoch_time.jsonl")
p.add_argument("--table", action="store_true", help="print the records as a Markdown table and exit (times nothing)")
args = p.parse_args()
RECORDS = ROOT / "bench" / "results" / "epoch_time.jsonl"


def table(path) -> str:
    """The records as one Markdown table, oldest first; records older than the width/threads fields say "—"."""
    cols = ("when", "device", "arch", "width", "threads", "mode", "precision", "format", "batch", "students",
            "load_1min_before", "load_1min_after", "plain_s_per_epoch", "method_s_per_epoch", "method_over_plain", "sparsity_share",
            "commit")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    cell = lambda v: "—" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))
    return "\n".join(md_table(cols, ([cell(r.get(c)) for c in cols] for r in rows)))


if args.table:
    print(table(RECORDS))
    raise SystemExit(0)
if args.threads is not None:
    if args.threads < 1:
        raise SystemExit(f"--threads: must be a positive count, got {args.threads}")
    torch.set_num_threads(args.threads)
dev = resolve_device(args.device)
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
ds = D.make_synthetic(n_train=args.images, n_test=16).to(dev)
mk = lambda views, channels_last=True: D.Batches(ds.train, args.batch, D.MEAN["synthetic"], D.STD["synthetic"],
                                                 train=True, channels_last=channels_last, views=views)
batches = mk(1)
steps_per_epoch = len(batches)
timed_steps = min(args.steps or steps_per_epoch, steps_per_epoch)


def timed(step_fn, batches, parts: PartTimer | None = None) -> float:
    """Seconds for one epoch: warm-up steps first (untimed), then `timed_steps` steps, scaled to an epoch.
    `parts`: switched on for the timed steps only."""
    it = iter(batches.set_epoch(0))
    for _ in range(args.warmup):
        step_fn(*next(it))
    sync()
    if parts is not None:
        parts.on = True
    t0 = time.perf_counter()
    for i, (x, y) in enumerate(batches.set_epoch(1)):
        if i == timed_steps:
            break
        step_fn(x, y)
    sync()
    return (time.perf_counter() - t0) * steps_per_epoch / timed_steps


def net(arch, width, fmt="channels_last"):
    torch.manual_seed(0)
    return build_model(arch, width=width).to(dev).to(
        memory_format=torch.channels_last if fmt == "channels_last" else torch.contiguous_format)


def load_average():
    """The 1-minute load average (None where the OS has none): how busy the cores were while timing."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def peak():
    """GiB at the CUDA allocator's peak; None on a CPU (no allocator counter to read)."""
    return torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None


def gib(x) -> str:
    return "n/a" if x is None else f"{x:.2f} GiB"


class PartTimer:
    """Seconds spent inside `part()` calls during timed steps: CUDA events on a GPU (read after the epoch's final
    sync, so no step waits for them), perf_counter on a CPU. `on` is False during warm-up."""

    def __init__(self):
        self.on, self.events, self.seconds = False, [], 0.0

    def part(self, fn):
        if not self.on:
            return fn()
        if dev.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            self.events.append((start, end))
        else:
            t0 = time.perf_counter()
            fn()
            self.seconds += time.perf_counter() - t0

    def total(self) -> float:
        sync()
        return self.seconds + sum(s.elapsed_time(e) for s, e in self.events) / 1000


def reset_peak():
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


native_bf16 = sorted(cpu_flags() & set(NATIVE_BF16_FLAGS)) if dev.type == "cpu" else None
print(f"device: {device_name(dev)}  torch {torch.__version__}  batch {args.batch}  {args.images} images/epoch "
      f"({steps_per_epoch} steps)  timed steps {timed_steps}  students {args.students}  "
      f"native bf16 flags: {native_bf16}", flush=True)
grid = [(m, a, float(w), prec, fmt) for m in args.compile.split(",") for a in args.archs.split(",")
        for w in args.widths.split(",") for prec in args.precisions.split(",") for fmt in args.formats.split(",")]
for mode, arch, width, prec, fmt in grid:
    cmode = False if mode == "eager" else mode
    torch._dynamo.reset()
    load_before = load_average()
    model = net(arch, width, fmt).train()
    batches = mk(1, fmt == "channels_last")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss_fn = compiled(functools.partial(plain_loss, precision=prec), cmode)

    def plain_step(x, y):
        loss, _ = loss_fn(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    reset_peak()
    t0 = time.perf_counter()
    try:
        plain = timed(plain_step, batches)
    except Exception as e:  # a compile failure is a result to report, not a reason to stop the others
        print(f"{mode:10s} {prec} {fmt} {arch:12s} w{width:g} plain FAILED: {type(e).__name__}: {str(e)[:300]}", flush=True)
        continue
    plain_wall, plain_mem = time.perf_counter() - t0, peak()
    del model, opt, loss_fn

    teacher = net(arch, width, fmt)
    target = TARGETS.get(arch, "flops=0.5")
    cfg = resolve_method(arch, target, "paper", students=args.students, batch_size=args.batch, compile=cmode,
                         width=width, precision=prec, channels_last=fmt == "channels_last")
    ours = Method(teacher, cfg, CostModel(teacher), parse_target(target), steps_per_epoch)
    ours.begin_epoch(0)

    sparsity = PartTimer()

    def method_step(x, y):  # = Method.step (distill, then sparsify), with the sparsity step timed
        ours.distill(x, y)
        sparsity.part(ours.sparsify)

    reset_peak()
    views = mk(args.students, fmt == "channels_last")  # each student its own crop + flip (METHOD student_views='own')
    t0 = time.perf_counter()
    try:
        method = timed(method_step, views, sparsity)
    except Exception as e:
        print(f"{mode:10s} {prec} {fmt} {arch:12s} w{width:g} plain {plain:7.2f} s/epoch | method FAILED: {type(e).__name__}: "
              f"{str(e)[:300]}", flush=True)
        continue
    method_wall, method_mem = time.perf_counter() - t0, peak()
    sparse_s = sparsity.total() * steps_per_epoch / timed_steps  # scaled to an epoch, as `method` is
    print(f"{mode:10s} {prec} {fmt} {arch:12s} w{width:g} plain {plain:7.2f} s/epoch (peak {gib(plain_mem)}) | method {method:7.2f} "
          f"s/epoch = {method / plain:.2f}x plain (peak {gib(method_mem)}) | sparsity step {sparse_s:.2f} "
          f"s/epoch = {100 * sparse_s / method:.0f}% of method (timed directly) | wall incl. warm-up/compile "
          f"{plain_wall:.0f} s + {method_wall:.0f} s", flush=True)
    record = dict(bench="epoch_time", when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  device=device_name(dev), torch=torch.__version__, commit=git_commit(), arch=arch, width=width,
                  mode=mode, precision=prec, format=fmt, native_bf16_flags=native_bf16,
                  threads=torch.get_num_threads() if dev.type == "cpu" else None,
                  load_1min_before=load_before, load_1min_after=load_average(),
                  batch=args.batch, students=args.students, images_per_epoch=args.images,
                  timed_steps=timed_steps, warmup=args.warmup, plain_s_per_epoch=round(plain, 3),
                  method_s_per_epoch=round(method, 3), method_over_plain=round(method / plain, 3),
                  sparsity_s_per_epoch=round(sparse_s, 3), sparsity_share=round(sparse_s / method, 4),
                  peak_gib_plain=plain_mem and round(plain_mem, 3),
                  peak_gib_method=method_mem and round(method_mem, 3))
    if not args.no_record:
        with open(RECORDS, "a") as f:  # one line per network, written whole
            f.write(json.dumps(record) + "\n")
    ours.close()
    del teacher, ours
