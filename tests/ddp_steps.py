"""A few SGD steps of resnet20 in float64 through the engine's own pieces (sharded `Batches`, `distributed.wrap`,
`engine.train_epoch`), run by tests/test_distributed.py as one process (python tests/ddp_steps.py OUT) and as
two (torchrun --nproc_per_node=2 tests/ddp_steps.py OUT). In float64 the rounding that makes float32 runs drift
apart is gone, so the two must agree to ~1e-10: any mistake in the shards, the gradient averaging or the synced
BatchNorm statistics shows up at once. Rank 0 saves the summed losses and the final weights to OUT."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from paper_repro import distributed as DI  # noqa: E402
from paper_repro.data import Batches, make_synthetic  # noqa: E402
from paper_repro.engine import train_epoch  # noqa: E402
from paper_repro.models import build_model  # noqa: E402


def loss_fn(model, x, y):
    out = model(x)
    return torch.nn.functional.cross_entropy(out, y), out  # float64 (engine.plain_loss casts to float32)


def main(out: str) -> None:
    DI.init("cpu")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model("resnet20", 10, width=0.25).double()
    split = make_synthetic(n_train=128, n_test=8).train
    batches = Batches(split, 32, (0.5,) * 3, (0.25,) * 3, train=True, seed=5, shard=DI.shard())
    net = DI.wrap(model, torch.device("cpu"))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    losses = []
    for epoch in range(2):
        loss_sum, correct, n = train_epoch(net, ((x.double(), y) for x, y in batches.set_epoch(epoch)), opt,
                                           loss_fn)
        loss_sum, correct, n = DI.sum_over_ranks(loss_sum, correct, n)
        losses.append(loss_sum.item() / n)
    if DI.is_main():
        torch.save(dict(losses=losses, n=n, world=DI.world_size(), model=model.state_dict()), out)
    DI.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
