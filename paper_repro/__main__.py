"""Command line: python -m paper_repro {count,train,teachers,paper-width,prune,campaign,arms,arm,reproduce} ...

Imports of the commands' modules happen inside the commands: `python -m paper_repro count` need not load the
reproduction machinery (start-up time).

Every failure is one `error: ...` line and exit code 2 (bad input, missing or damaged data, a bad checkpoint,
an unwritable folder, a run folder in use, a failed notebook); --debug or PAPER_REPRO_DEBUG=1 shows the traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

from .config import COMPILE_MODES, PRECISIONS, PROFILES
from .data import DATASETS
from .data import ENV_ALLOW_MODIFIED as ALLOW_ENV
from .models import MODELS

ENV_DEBUG = "PAPER_REPRO_DEBUG"


def _finite(v):
    """NaN and infinities as None (JSON has no NaN: strict parsers reject it), in nested dicts and lists too."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _print_json(obj) -> None:
    from .distributed import is_main

    if not is_main():  # under torchrun: one answer, rank 0's
        return
    print(json.dumps(_finite(obj), allow_nan=False, default=str))


# Numeric flags: (smallest allowed value, whether that value itself is allowed). Checked before anything runs.
NUMBER_FLAGS = {"max_epochs_now": (1, True), "budget_minutes": (0, False), "epochs": (1, True),
                "method_epochs": (1, True), "finetune_epochs": (0, True), "seed": (0, True), "threads": (1, True),
                "students": (1, True), "num_classes": (1, True), "width": (0, False), "kd_weight": (0, True),
                "feature_weight": (0, True), "mutual_weight": (0, True), "lambda_max": (0, True),
                "resolution": (1, True), "lanes": (1, True)}


def _check_numbers(args) -> None:
    for name, (low, inclusive) in NUMBER_FLAGS.items():
        v = getattr(args, name, None)
        if v is None:
            continue
        if not math.isfinite(v) or (v < low if inclusive else v <= low):
            kind = "an integer" if isinstance(v, int) else "a number"
            raise ValueError(f"--{name.replace('_', '-')}: must be {kind} {'>=' if inclusive else '>'} {low}, "
                             f"got {v}")


def _count(args):
    from .counting import count, default_input_size
    from .models import build_model, native

    # Defaults: the network's own dataset (CIFAR: 10 classes at 32x32; ResNet-50: ImageNet's 1000 at 224x224).
    classes = args.num_classes or native(args.arch)["num_classes"]
    m = build_model(args.arch, classes, width=args.width)
    size = default_input_size(m, args.resolution)
    out = {"arch": args.arch, "num_classes": classes, "width": args.width, "resolution": size[-1],
           **count(m, size), "prunable_groups": len(m.channel_groups())}
    if args.json:
        _print_json(out)
    else:
        print(f"{args.arch}: {out['params']:,} params, {out['macs']:,} MACs (conv+linear, {size[-1]}x{size[-1]}, "
              f"batch 1), {out['prunable_groups']} prunable channel groups")


BUDGET_HELP = "stop between epochs before this many minutes have passed (resume later)"
PRECISION_HELP = ("the training passes' precision: auto = bf16 on a GPU, fp32 on the CPU; bf16 on the CPU needs "
                  "native bf16 (avx512_bf16 or AMX); part of the run's cache key unless auto")
COMPILE_CHOICES = tuple("off" if m is False else m for m in COMPILE_MODES)  # the command line's spelling of False


def _compile_mode(flag):
    """--compile off (eager, the default) or a torch.compile mode (for a GPU; execution only, same cache key)."""
    return False if flag in (None, "off") else flag


def _set_threads(n):
    """--threads: intra-op threads (default: PyTorch's, one per core). Recorded in the device stamp; results
    are bitwise repeatable for one thread count on one processor kind."""
    if n is None:
        return
    import torch

    if n < 1:
        raise ValueError(f"threads: must be an integer >= 1, got {n}")
    torch.set_num_threads(n)


def _budget_s(minutes):
    return None if minutes is None else 60.0 * minutes


def _dataset(args) -> dict:
    """--dataset as settings: an imagefolder run also takes its number of classes from DIR/train."""
    if args.dataset is None:
        return {}
    if args.dataset != "imagefolder":
        return {"dataset": args.dataset}
    from .imagefolder import count_classes

    return {"dataset": "imagefolder", "num_classes": count_classes(args.data_dir)}


def _train(args):
    from .train import train_baseline

    _set_threads(args.threads)
    r = train_baseline(args.arch, args.profile, args.seed, device=args.device, data_dir=args.data_dir,
                       download=not args.no_download, max_epochs_now=args.max_epochs_now, epochs=args.epochs,
                       compile=_compile_mode(args.compile), time_budget_s=_budget_s(args.budget_minutes),
                       allow_training=True, precision=args.precision, **_dataset(args))
    _print_json({"arch": args.arch, "profile": args.profile, "epochs_done": len(r.metrics),
                 "epochs": r.config["epochs"], "test_acc": r.test_acc, "train_seconds": round(r.train_seconds, 1),
                 "run_dir": str(r.run_dir), **r.dataset_stamp})


def _teachers(args):
    from .teachers import publish
    from .train import train_teachers

    _set_threads(args.threads)
    archs = args.archs.split(",")
    if args.publish_only:
        from .config import paper_width_overrides, resolve_baseline
        from .train import run_dir_for

        for a in archs:
            over = paper_width_overrides(a, args.profile) if args.paper_width else {}
            ckpt = run_dir_for(resolve_baseline(a, args.profile, args.seed, **over)) / "checkpoint.pt"
            print(json.dumps({"arch": a, "status": publish(a, args.profile, args.seed, ckpt)}))
        return
    for row in train_teachers(archs, args.profile, args.seed, _budget_s(args.budget_minutes), args.retrain,
                              args.device, args.data_dir, not args.no_download, paper_width=args.paper_width):
        print(json.dumps(row))


def _paper_width(args):
    from .reproduction.paper_width import train_runs

    _set_threads(args.threads)
    names = None if args.runs == "all" else args.runs.split(",")
    for row in train_runs(names, args.profile, _budget_s(args.budget_minutes), args.retrain, args.device,
                          args.data_dir, not args.no_download, max_epochs_now=args.max_epochs_now,
                          publish_only=args.publish_only, compile=_compile_mode(args.compile)):
        print(json.dumps(row), flush=True)


def _prune(args):
    from .method import prune_train

    over = {k: getattr(args, k) for k in ("students", "criterion", "selection", "penalty", "labels", "kd_weight",
                                          "feature_weight", "mutual_weight", "lambda_max", "epochs",
                                          "finetune_epochs", "kd_form", "student_views", "precision")}
    _set_threads(args.threads)
    over["compile"] = _compile_mode(args.compile)
    if args.dataset == "imagefolder" and args.teacher is None:  # the profile's own teacher is a CIFAR one
        raise ValueError("--dataset imagefolder: pass --teacher CHECKPOINT, a baseline trained on the same folder "
                         "(python -m paper_repro train ARCH --dataset imagefolder --data-dir DIR)")
    over.update(_dataset(args))
    r = prune_train(args.arch, args.target, args.profile, args.seed, device=args.device, teacher=args.teacher,
                    out=args.out, data_dir=args.data_dir, download=not args.no_download,
                    max_epochs_now=args.max_epochs_now, time_budget_s=_budget_s(args.budget_minutes), **over)
    if not r.summary:
        _print_json({"run_dir": str(r.run_dir), "epochs_done": r.metrics[-1]["epoch"] if r.metrics else 0,
                     "epochs": r.config["epochs"], "status": "stopped early; run again to resume"})
        return
    keys = ("arch", "target", "dataset_official", "baseline_acc", "pruned_acc", "pruned_acc_mean", "params_before",
            "params_after", "macs_before", "macs_after", "params_pruned", "flops_pruned", "target_met",
            "max_abs_logit_diff")
    _print_json({**{k: r.summary[k] for k in keys}, "run_dir": str(r.run_dir)})


def _campaign(args):
    from .reproduction.campaign import run_campaign

    rows = run_campaign(args.archs.split(","), args.profile, _budget_s(args.budget_minutes), args.method_epochs,
                        args.seed, args.device, _compile_mode(args.compile), args.data_dir, not args.no_download,
                        record_to=None if args.no_record else args.record_to,
                        carry=None if args.no_carry else args.carry)
    for row in rows:
        _print_json(row)


def _arms(args):
    from .reproduction.arms import commands

    try:
        print("\n".join(commands(args.profile, args.seed, teachers=args.teachers)), flush=True)
    except BrokenPipeError:  # `arms | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _arm(args):
    from .reproduction.arms import run, spec_from_json

    spec = None if args.spec is None else spec_from_json(args.spec)
    _set_threads(args.threads)
    _print_json(run(args.name, args.profile, args.seed, args.device, spec=spec))


def _reproduce(args):
    from .reproduction.notebooks import run_notebooks

    run_notebooks(args.profile, args.notebooks or None, force=args.force, lanes=args.lanes)


def _add_count(sub):
    """`count ARCH`: params and MACs."""
    c = sub.add_parser("count", help="params and MACs of an architecture")
    c.add_argument("arch", choices=list(MODELS), metavar="ARCH", help=f"one of: {', '.join(MODELS)}")
    c.add_argument("--num-classes", type=int, default=None,
                   help="default: the network's own dataset's (10; resnet50: 1000)")
    c.add_argument("--resolution", type=int, default=None, help="input height = width (default 32; resnet50: 224)")
    c.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0 = the paper's network)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(fn=_count)
    return c


def _add_train(sub):
    """`train ARCH`: one baseline."""
    t = sub.add_parser("train", help="train (or resume, or load from cache) a baseline")
    t.add_argument("arch", choices=list(MODELS), metavar="ARCH", help=f"one of: {', '.join(MODELS)}")
    t.add_argument("--profile", choices=PROFILES, default="cpu")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    t.add_argument("--data-dir", default=None,
                   help="folder holding cifar-10-batches-py, or DIR of --dataset imagefolder (default $PAPER_REPRO_DATA "
                        "or data/)")
    t.add_argument("--no-download", action="store_true", help="never try to download the data")
    t.add_argument("--epochs", type=int, default=None,
                   help="override the profile's epochs (LR decays stay at 50%% and 75%%; a new cache key)")
    t.add_argument("--max-epochs-now", type=int, default=None, help="stop after this many epochs (resume later)")
    t.add_argument("--budget-minutes", type=float, default=None, help=BUDGET_HELP)
    t.add_argument("--compile", choices=COMPILE_CHOICES, default="off",
                   help="torch.compile mode of the training step (GPU; default off = eager)")
    t.add_argument("--threads", type=int, default=None, help="CPU threads (default: one per core)")
    t.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    t.set_defaults(fn=_train)
    return t


def _add_teachers(sub):
    """`teachers`: the committed teachers (`make teachers`)."""
    from .teachers import COMMITTED_PROFILES

    tc = sub.add_parser("teachers", help="train or resume the committed teachers and copy their state to teachers/ "
                                         "(what `make teachers` runs)")
    tc.add_argument("--archs", default="resnet56,mobilenetv2,vgg_small", help="comma-separated architectures")
    tc.add_argument("--profile", choices=COMMITTED_PROFILES, default="cpu")
    tc.add_argument("--seed", type=int, default=0)
    tc.add_argument("--budget-minutes", type=float, default=None, help=BUDGET_HELP)
    tc.add_argument("--threads", type=int, default=None, help="CPU threads (default: one per core)")
    tc.add_argument("--retrain", action="store_true", help="from scratch, replacing committed teachers and state")
    tc.add_argument("--publish-only", action="store_true", help="only copy runs/ state to teachers/, no training")
    tc.add_argument("--paper-width", action="store_true",
                    help="the paper-width teachers (config.PAPER_WIDTH: cpu: resnet56, vgg_small, mobilenetv2 at width 1.0) instead of the "
                         "profile's reduced-width ones")
    tc.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    tc.add_argument("--data-dir", default=None)
    tc.add_argument("--no-download", action="store_true")
    tc.set_defaults(fn=_teachers)
    return tc


def _add_paper_width(sub):
    """`paper-width`: the committed runs at the paper's width (`make paper-width`)."""
    pw = sub.add_parser("paper-width", help="train or resume the committed paper-width runs (issue 23: the method's "
                                            "seeds and the same-FLOPs controls) and copy their state to paper_width/")
    pw.add_argument("--runs", default="all", help="comma-separated run names (method-s0, control-distill, "
                                                  "control-scratch, method-s1, ...; `all`: every one, in that order)")
    pw.add_argument("--profile", choices=("smoke", "cpu"), default="cpu")
    pw.add_argument("--budget-minutes", type=float, default=None, help=BUDGET_HELP)
    pw.add_argument("--max-epochs-now", type=int, default=None, help="stop each run after this many epochs")
    pw.add_argument("--threads", type=int, default=None, help="CPU threads (default: one per core)")
    pw.add_argument("--retrain", action="store_true", help="from scratch, replacing the committed runs and state")
    pw.add_argument("--publish-only", action="store_true",
                    help="only copy the runs' state from runs/ to paper_width/ (and the teacher's to teachers/), "
                         "no training: to commit while another process trains them")
    pw.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    pw.add_argument("--compile", choices=COMPILE_CHOICES, default="off",
                    help="torch.compile mode of the method's and the labelled control's training step (GPU; default "
                         "off = eager; execution only, same settings key); the peers and the fine-tuning test stay eager")
    pw.add_argument("--data-dir", default=None)
    pw.add_argument("--no-download", action="store_true")
    pw.set_defaults(fn=_paper_width)
    return pw


def _add_prune(sub):
    """`prune`: one run of the method."""
    from .allocation import TARGET_KINDS
    from .ista import PENALTIES
    from .losses import KD_FORMS
    from .method import LABELS, SELECTIONS, STUDENT_VIEWS
    from .sensitivity import CRITERIA

    pr = sub.add_parser("prune", help="baseline (cached) -> label-free dynamic sparse training -> channel removal")
    pr.add_argument("--arch", required=True, choices=list(MODELS), metavar="ARCH", help=f"one of: {', '.join(MODELS)}")
    pr.add_argument("--target", required=True, help=f"KIND=R with KIND in {TARGET_KINDS} and R in (0, 1), e.g. flops=0.60")
    pr.add_argument("--profile", choices=PROFILES, default="cpu")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--students", type=int, default=None, help="N students (default 2)")
    named_values = {  # the method's settings with named values; None keeps the profile's
        "--criterion": (CRITERIA, "expected-sparse set criterion (default taylor)"),
        "--selection": (SELECTIONS, "re-select every iteration (dynamic), once per epoch (static) or once at the start (fixed)"),
        "--penalty": (PENALTIES, "penalty schedule (default progressive)"),
        "--labels": (LABELS, "on: add cross-entropy (ablation; default off)"),
        "--kd-form": (KD_FORMS, "teacher-prediction loss (default kl)"),
        "--student-views": (STUDENT_VIEWS, "own: each student its own crop + flip of the batch (default); shared: one view for all"),
    }
    for flag, (choices, text) in named_values.items():
        pr.add_argument(flag, choices=choices, default=None, help=text)
    weights = {"--kd-weight": "λ1 (0 turns KD off)", "--feature-weight": "λ2 (0 turns the feature loss off)",
               "--mutual-weight": "λ3 (0 turns mutual learning off)",
               "--lambda-max": "penalty strength at batch 64/lr 0.1/50k images"}
    for flag, text in weights.items():
        pr.add_argument(flag, type=float, default=None, help=text)
    pr.add_argument("--epochs", type=int, default=None, help="method epochs (default: the profile's)")
    pr.add_argument("--finetune-epochs", type=int, default=None, help="fine-tune after removal (default 0)")
    pr.add_argument("--teacher", default=None, help="baseline checkpoint to start from (default: cached baseline)")
    pr.add_argument("--out", default=None, help="run folder (default runs/prune/...)")
    pr.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    pr.add_argument("--data-dir", default=None, help="as for train")
    pr.add_argument("--no-download", action="store_true")
    pr.add_argument("--max-epochs-now", type=int, default=None, help="stop after this many epochs (resume later)")
    pr.add_argument("--budget-minutes", type=float, default=None, help=BUDGET_HELP + " (method epochs only)")
    pr.add_argument("--compile", choices=COMPILE_CHOICES, default="off",
                    help="torch.compile mode of the distillation step (GPU; default off = eager)")
    pr.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    pr.add_argument("--threads", type=int, default=None, help="CPU threads (default: one per core)")
    pr.set_defaults(fn=_prune)
    return pr


def _add_campaign(sub):
    """`campaign`: the paper profile's runs within a time budget."""
    from .paper import CARRY, PAPER_RUNS, PAPER_TARGETS
    from .reproduction.campaign import ORDER

    cp = sub.add_parser("campaign", help="the main table's runs (baseline, then method), network after network, "
                                         "within a time budget; run again to resume")
    cp.add_argument("--archs", default=",".join(ORDER),
                    help=f"comma-separated, from {', '.join(PAPER_TARGETS)} (default: {','.join(ORDER)})")
    cp.add_argument("--profile", choices=PROFILES, default="paper")
    cp.add_argument("--budget-minutes", type=float, default=None, help=BUDGET_HELP)
    cp.add_argument("--method-epochs", type=int, default=None,
                    help="method epochs (default: the recipe's, = the baseline's); fewer: a shortened recipe")
    cp.add_argument("--seed", type=int, default=0)
    cp.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    cp.add_argument("--data-dir", default=None)
    cp.add_argument("--no-download", action="store_true")
    cp.add_argument("--compile", choices=COMPILE_CHOICES, default="off",
                    help="torch.compile mode of the training steps (GPU; reduce-overhead was fastest on an H100)")
    cp.add_argument("--record-to", default=str(PAPER_RUNS), help="where finished runs' small files are copied")
    cp.add_argument("--no-record", action="store_true", help="do not copy finished runs anywhere")
    cp.add_argument("--carry", default=str(CARRY),
                    help="where an unfinished method run's state is kept for the next call on another machine "
                         "(commit it after a GPU window)")
    cp.add_argument("--no-carry", action="store_true", help="keep unfinished runs in runs/ only")
    cp.set_defaults(fn=_campaign)
    return cp


def _add_arms(sub):
    """`arms`: every run of notebooks 02-07, one command per line."""
    ar = sub.add_parser("arms", help="print every training run of notebooks 02-07 as one command per line (to run "
                                     "them in parallel; docs/cli.md)")
    ar.add_argument("--profile", choices=PROFILES, default="cpu")
    ar.add_argument("--seed", type=int, default=0)
    ar.add_argument("--teachers", action="store_true", help="print the teachers' train commands instead (run first)")
    ar.set_defaults(fn=_arms)
    return ar


def _add_arm(sub):
    """`arm NAME`: one of them."""
    a1 = sub.add_parser("arm", help="train (or load) one run printed by `arms`, as its notebook would")
    a1.add_argument("name", help="an arm name printed by `arms`")
    a1.add_argument("--profile", choices=PROFILES, default="cpu")
    a1.add_argument("--seed", type=int, default=0)
    a1.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    a1.add_argument("--threads", type=int, default=None, help="CPU threads (default: one per core)")
    a1.add_argument("--spec", default=None, metavar="JSON",
                    help="the arm itself, as `reproduce --lanes` passes it (arms.Arm.spec): run exactly it, "
                         "without building every arm's settings to find NAME")
    a1.set_defaults(fn=_arm)
    return a1


def _add_reproduce(sub):
    """`reproduce`: the notebooks, with papermill."""
    r = sub.add_parser("reproduce", help="run the notebooks with papermill (skips those whose inputs are unchanged)")
    r.add_argument("--profile", choices=PROFILES, default="cpu")
    r.add_argument("--force", action="store_true", help="rerun even if the inputs did not change")
    r.add_argument("--lanes", type=int, default=1,
                   help="first train every arm of notebooks 02-07 in this many parallel processes (default 1: "
                        "none, each notebook trains its own runs; make reproduce passes 2 on CPU)")
    r.add_argument("notebooks", nargs="*", help="notebook names (default: all in notebooks/)")
    r.set_defaults(fn=_reproduce)
    return r


def build_parser() -> argparse.ArgumentParser:
    """The command line: one builder per command, then the flags several commands share."""
    p = argparse.ArgumentParser(prog="python -m paper_repro", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help=f"show the traceback of a failure (or {ENV_DEBUG}=1)")
    sub = p.add_subparsers(dest="cmd", required=True)
    c, t, tc, pw, pr, cp, ar, a1, r = (add(sub) for add in (_add_count, _add_train, _add_teachers, _add_paper_width,
                                                             _add_prune, _add_campaign, _add_arms, _add_arm,
                                                             _add_reproduce))
    for sp in (t, pr):
        sp.add_argument("--dataset", choices=DATASETS, default=None,
                        help="default: the profile's; imagefolder: DIR/train/<class>/<image> and DIR/val/... of "
                             "--data-dir, ImageNet augmentation at 224x224 (docs/imagenet.md)")
    for sp in (c, t, tc, pw, pr, cp, ar, a1, r):  # also after the command; SUPPRESS: not given there keeps the top-level value
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=f"show the traceback of a failure (or {ENV_DEBUG}=1)")
    for sp in (t, pr, cp, a1, r):
        sp.add_argument("--allow-modified-data", action="store_true",
                        help=f"run on a data copy that matches no known copy (or {ALLOW_ENV}=1); its results say "
                             "dataset_official=False and carry its fingerprint")

    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get(ENV_DEBUG, "0") not in ("", "0")
    if getattr(args, "allow_modified_data", False):
        os.environ[ALLOW_ENV] = "1"  # the environment: notebooks run by `reproduce` see it too
    from . import distributed as DI

    try:
        _check_numbers(args)
        if DI.launched():  # torchrun: join the other processes (NCCL on GPUs, gloo on CPUs)
            if args.fn not in (_train, _prune, _arm):  # every run a single call trains; not the loops
                DI.refuse(args.cmd)
            DI.init(getattr(args, "device", None) or "auto")
        args.fn(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted; the same command resumes", file=sys.stderr)
        return 130
    except Exception as e:  # every failure: one line naming the file or the parameter, no traceback
        if debug:
            raise
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 2
    finally:
        DI.shutdown()
    return 0


def error_line(e: Exception) -> str:
    """The message of a failure. Our own errors name the file or the parameter; an OSError raised elsewhere
    is given its file name; anything else is unexpected and says how to see more."""
    if isinstance(e, FileNotFoundError) and e.filename:
        return f"{e.filename}: not found"
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror}"
    if isinstance(e, (OSError, ValueError, RuntimeError)):
        return str(e)
    return f"{type(e).__name__}: {e} (unexpected: rerun with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
