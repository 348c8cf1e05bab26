"""Several processes, one run: torchrun and DistributedDataParallel, on PyTorch's own torch.distributed.

    torchrun --nproc_per_node=K -m paper_repro train ARCH ...      (docs/distributed.md)

torchrun starts K processes and tells each its place through the environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT). `init` joins them into one process group: NCCL when the run is on GPUs (each rank on
cuda:LOCAL_RANK), gloo on CPUs. Without torchrun (WORLD_SIZE unset or 1) nothing here does anything: every
helper is the identity and a run is bitwise the run of before this module.

How a run is split (the baseline, `train.train_baseline`; the classic and Torch-Pruning arms alike):
- every rank draws the same seeded permutation and augmentation of an epoch, cuts each global batch of B
  images into K contiguous slices of B/K and trains on its own slice (`data.Batches(shard=...)`);
- `wrap` puts the network in DistributedDataParallel, which averages the gradients over the ranks: the mean of
  K means over B/K images is the mean over B;
- BatchNorm layers normalise with the statistics of the whole global batch (`SyncedBatchNorm2d`): without it
  each rank would normalise with its own B/K images and K processes would not compute what one does;
- the per-epoch sums (loss, correct, images) are added over the ranks (`sum_over_ranks`), evaluation runs on
  every rank over the whole split (same weights: same numbers), decisions that depend on a clock (the time
  budget) are rank 0's (`from_main`);
- only rank 0 (`is_main`) locks the run folder and writes (checkpoints, metrics, config, summaries); every
  rank reads the same checkpoint to resume.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import pickle

import torch
import torch.distributed as dist

ENV_WORLD = "WORLD_SIZE"


def launched() -> bool:
    """True when torchrun (or an equivalent launcher) started this process as one of several."""
    return int(os.environ.get(ENV_WORLD, "1") or 1) > 1


def active() -> bool:
    """True inside a process group of more than one process (after `init`)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_main() -> bool:
    """True for the process that writes (rank 0), and for a single-process run."""
    return rank() == 0


def backend_for(device: str = "auto") -> str:
    """NCCL when the run trains on GPUs, gloo on CPUs."""
    return "nccl" if device != "cpu" and torch.cuda.is_available() else "gloo"


def init(device: str = "auto") -> bool:
    """Join the process group that torchrun's environment describes (once); False, doing nothing, when this
    process was not started as one of several."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return active()
    if not dist.is_available():
        raise RuntimeError("torchrun: this PyTorch has no torch.distributed; run one process")
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend)
    return active()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """This rank's device: cuda:LOCAL_RANK for a run on GPUs under torchrun, `device` otherwise."""
    if active() and device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank())
    return device


def shard() -> tuple[int, int]:
    """(this rank, number of ranks): which slice of every global batch this process trains on."""
    return rank(), world_size()


def barrier() -> None:
    if active():
        dist.barrier()


def sum_over_ranks(*values):
    """Each value (a tensor or a number) summed over the ranks; returned as given when one process runs."""
    if not active():
        return values
    out = []
    for v in values:
        t = v.detach().clone() if torch.is_tensor(v) else torch.tensor(v, dtype=torch.float64)
        dev = t.device
        if dist.get_backend() == "nccl" and dev.type != "cuda":
            t = t.cuda()
        dist.all_reduce(t)
        t = t.to(dev)
        out.append(t if torch.is_tensor(v) else type(v)(t.item()))
    return tuple(out)


def average_gradients(params) -> None:
    """Every gradient of `params` replaced, in place, by its mean over the ranks (one all_reduce of them all):
    what DistributedDataParallel does, for a step that does not go through one module's forward (the method's
    N students). Nothing happens when one process runs."""
    if not active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch._utils._flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= world_size()
    for g, v in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
        g.copy_(v)


def from_main(obj):
    """Rank 0's value of `obj` on every rank (a decision that must be the same everywhere, e.g. a clock's)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_same(obj, what: str) -> None:
    """Raise on every rank when `obj` (anything picklable) is not the same on every rank."""
    if not active():
        return
    h = hashlib.sha256(pickle.dumps(obj)).hexdigest()
    hashes = [None] * world_size()
    dist.all_gather_object(hashes, h)
    if len(set(hashes)) > 1:
        raise RuntimeError(f"torchrun: {what} differs between the ranks ({', '.join(x[:8] for x in hashes)})")


def refuse(what: str) -> None:
    """`what` loops over many runs: under torchrun, one clear error rather than K processes racing through it."""
    if active() or launched():
        raise RuntimeError(f"{what}: runs in one process only; under torchrun start one run at a time with `train`, "
                           "`prune` or `arm` (see docs/distributed.md)")


# -- the network across processes -------------------------------------------------------------------------------------
class SumOverRanks(torch.autograd.Function):
    """A tensor summed over the ranks (all_reduce), differentiably: every rank's loss depends on every rank's
    tensor, so the gradient of the sum is the sum of the ranks' gradients (an all_reduce again)."""

    @staticmethod
    def forward(ctx, t):
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class SyncedBatchNorm2d(torch.nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch, summed over the ranks with
    a differentiable all_reduce (`SumOverRanks`; torch.nn.SyncBatchNorm refuses CPU tensors, and gloo runs
    on CPUs). Same parameters and buffers as BatchNorm2d; outside a process group it is BatchNorm2d."""

    def forward(self, x):
        if not (self.training and active()):
            return super().forward(x)
        dims = (0, 2, 3)
        c = x.shape[1]
        xf = x.float() if x.dtype != torch.float64 else x
        local = torch.cat([xf.sum(dims), xf.new_tensor([xf.numel() // c])])
        total = SumOverRanks.apply(local)
        n = total[-1]
        mean = total[:c] / n
        centred = xf - mean.view(1, c, 1, 1)
        var = SumOverRanks.apply((centred * centred).sum(dims)) / n  # two passes: exact, unlike E[x²] - E[x]²
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - f).add_(mean.detach(), alpha=f)
                self.running_var.mul_(1 - f).add_(var.detach() * (n / (n - 1)), alpha=f)
        y = centred * torch.rsqrt(var + self.eps).view(1, c, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y.to(x.dtype)


def sync_batchnorm_(model: torch.nn.Module) -> torch.nn.Module:
    """Every BatchNorm2d of `model` synced over the ranks, in place (the same objects, so the same weights and
    state dict); nothing changes when one process runs."""
    if active():
        for m in model.modules():
            if type(m) is torch.nn.BatchNorm2d:
                m.__class__ = SyncedBatchNorm2d
    return model


def plain_batchnorm_(model: torch.nn.Module) -> torch.nn.Module:
    """Undo `sync_batchnorm_`, in place: every SyncedBatchNorm2d back to BatchNorm2d (same objects, weights and
    state dict), for a network that leaves training to be cut, pruned by a library or saved."""
    for m in model.modules():
        if type(m) is SyncedBatchNorm2d:
            m.__class__ = torch.nn.BatchNorm2d
    return model


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` in DistributedDataParallel (gradients averaged over the ranks), with synced BatchNorm; `model`
    itself when one process runs. Save and evaluate `model`, train through what this returns."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    sync_batchnorm_(model)
    ids = [device.index] if device.type == "cuda" else None
    # The BN statistics are synced, so the buffers are the same on every rank: no broadcast before each forward.
    newer = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters  # PyTorch >= 2.14
    no_sync = {"forward_sync_buffers" if newer else "broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=ids, **no_sync)
