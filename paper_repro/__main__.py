"""Command line: python -m paper_repro {count,train,reproduce} ..."""
from __future__ import annotations

import argparse
import json
import sys

from .models import MODELS


def _count(args):
    from .counting import count
    from .models import build_model

    m = build_model(args.arch, args.num_classes, width=args.width)
    out = {"arch": args.arch, "num_classes": args.num_classes, "width": args.width, **count(m),
           "prunable_groups": len(m.channel_groups())}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.arch}: {out['params']:,} params, {out['macs']:,} MACs (conv+linear, 32x32, batch 1), "
              f"{out['prunable_groups']} prunable channel groups")


def _train(args):
    from .train import train_baseline

    r = train_baseline(args.arch, args.profile, args.seed, device=args.device, data_dir=args.data_dir,
                       download=not args.no_download, max_epochs_now=args.max_epochs_now)
    print(json.dumps({"arch": args.arch, "profile": args.profile, "epochs_done": len(r.metrics),
                      "epochs": r.config["epochs"], "test_acc": r.test_acc, "train_seconds": round(r.train_seconds, 1),
                      "run_dir": str(r.run_dir), **r.dataset_stamp}))


def _reproduce(args):
    from .reproduce import run_notebooks

    run_notebooks(args.profile, args.notebooks or None, force=args.force)


def main(argv=None):
    from .config import PROFILES

    p = argparse.ArgumentParser(prog="python -m paper_repro", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("count", help="params and MACs of an architecture")
    c.add_argument("arch", choices=list(MODELS), metavar="ARCH", help=f"one of: {', '.join(MODELS)}")
    c.add_argument("--num-classes", type=int, default=10)
    c.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0 = the paper's network)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(fn=_count)

    t = sub.add_parser("train", help="train (or resume, or load from cache) a baseline")
    t.add_argument("arch", choices=list(MODELS), metavar="ARCH", help=f"one of: {', '.join(MODELS)}")
    t.add_argument("--profile", choices=PROFILES, default="cpu")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    t.add_argument("--data-dir", default=None, help="folder holding cifar-10-batches-py (default $PAPER_REPRO_DATA or data/)")
    t.add_argument("--no-download", action="store_true", help="never try to download the data")
    t.add_argument("--max-epochs-now", type=int, default=None, help="stop after this many epochs (resume later)")
    t.set_defaults(fn=_train)

    r = sub.add_parser("reproduce", help="run the notebooks with papermill (skips those whose inputs are unchanged)")
    r.add_argument("--profile", choices=PROFILES, default="cpu")
    r.add_argument("--force", action="store_true", help="rerun even if the inputs did not change")
    r.add_argument("notebooks", nargs="*", help="notebook names (default: all in notebooks/)")
    r.set_defaults(fn=_reproduce)

    args = p.parse_args(argv)
    try:
        args.fn(args)
    except (ValueError, RuntimeError) as e:  # bad input, missing data, bad checkpoint: the message, no trace
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
