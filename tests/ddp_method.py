"""Two epochs of the method (`method.Method`: N students, Taylor scores, expected-sparse sets, group prox, the
per-epoch allocation) in float64, run by tests/test_distributed.py as one process (python tests/ddp_method.py
OUT) and as two (torchrun --nproc_per_node=2 tests/ddp_method.py OUT): with the gradients averaged over the
ranks before the scores, both must select the same channels and end at the same widths. Rank 0 saves the
metrics rows, the last scores and selected sets, the alive widths and the students' weights to OUT."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from paper_repro import distributed as DI  # noqa: E402
from paper_repro.allocation import parse_target  # noqa: E402
from paper_repro.counting import CostModel  # noqa: E402
from paper_repro.data import Batches, make_synthetic  # noqa: E402
from paper_repro.method import Method, resolve_method  # noqa: E402
from paper_repro.models import build_model  # noqa: E402


class Float64:
    """Batches whose images come as float64 (one tensor, or one per view)."""

    def __init__(self, batches):
        self.batches, self.split = batches, batches.split

    def __len__(self):
        return len(self.batches)

    def set_epoch(self, epoch):
        self.batches.set_epoch(epoch)
        return self

    def __iter__(self):
        for x, y in self.batches:
            yield (x.double() if torch.is_tensor(x) else [v.double() for v in x]), y


def main(out: str) -> None:
    DI.init("cpu")
    torch.set_num_threads(1)
    cfg = resolve_method("resnet20", "flops=0.4", "smoke", 0, students=2, epochs=2, lambda_max=0.5)
    b = cfg["baseline"]
    torch.manual_seed(0)
    teacher = build_model("resnet20", b["num_classes"], width=b["width"]).double()
    data = make_synthetic(n_train=128, n_test=64)
    norm = ((0.5,) * 3, (0.25,) * 3)
    train = Float64(Batches(data.train, 32, *norm, train=True, seed=5, views=2, shard=DI.shard()))
    curve = Float64(Batches(data.test, 64, *norm, train=False))
    method = Method(teacher, cfg, CostModel(build_model("resnet20", b["num_classes"], width=b["width"])),
                    parse_target(cfg["target"]), len(train))
    rows, selected = [], []
    for epoch in range(cfg["epochs"]):
        torch.manual_seed(epoch)
        method.begin_epoch(epoch)
        for x, y in train.set_epoch(epoch):
            method.step(x, y)
        method.sched.step()
        r, _ = method.end_epoch(epoch, curve, 0.0)
        rows += r
        selected.append([[m.clone() for m in sel] for sel in method.selected])
    if DI.is_main():
        torch.save(dict(world=DI.world_size(), rows=rows, selected=selected, scores=method.last_scores,
                        alive=[method.alive(i) for i in range(len(method.students))],
                        students=[s.state_dict() for s in method.students]), out)
    DI.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
