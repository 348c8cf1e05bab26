"""What the paper ran, in one place: its networks with their targets (notebooks 02 and 08, the GPU campaign, the
claims), the subject every ablation shares (notebooks 03-07), and where the paper-recipe runs are recorded.

The paper's tables are lost (docs/method.md §7): the targets are read from its abstract."""
from __future__ import annotations

from .provenance import ROOT

# The paper's headline targets: VGG-Small −93% params, ResNet-56 −60% FLOPs [chosen: the paper reports 60.33%],
# MobileNetV2 "3×" read as a FLOPs ratio [chosen].
PAPER_TARGETS = {"vgg_small": "params=0.93", "resnet56": "flops=0.60", "mobilenetv2": "flops=0.667"}

# The network and target every comparison of notebooks 03-07 shares (budget: config.ABLATION_BUDGET).
SUBJECT = dict(arch="resnet56", target="flops=0.60")

# Where the paper profile's finished runs are recorded (small files only), and its unfinished ones carried.
PAPER_RUNS = ROOT / "results" / "paper" / "runs"
CARRY = PAPER_RUNS.parent / "carry"
