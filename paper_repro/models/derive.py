"""Channel groups derived from a traced graph, for networks nobody wrote `channel_groups()` for (docs/own_network.md).

The network is traced with torch.fx and one example input, and every tensor's channel axis is followed through the
graph. A conv's output opens a new channel space. BatchNorms, activations, pools, dropout and a depthwise conv carry
a space through. A flatten carries it into a Linear layer, which then owns H*W columns per channel. A space is a
prunable group when all of these hold:

- a (non-depthwise) conv produces it and at least one conv or Linear reads it;
- it passes through a nonlinearity on the way (a linear bottleneck's output, MobileNetV2's block outputs, stays
  whole, as the hand-written groups keep it);
- nothing couples or pins it: an add or product of two tensors (a residual), a concatenation, channel padding, the
  network's input or output, a Linear layer's output, or a feature tap's output (the feature loss compares it with
  the teacher's).

Anything the walk cannot follow is refused with a ValueError naming the graph node: grouped (non-depthwise)
convolutions, a parameterised module called twice, other parameterised layers (LayerNorm, GroupNorm, ...), reshapes
other than a flatten, and any other function. The derived groups equal the hand-written ones of vgg_small, resnet56
and mobilenetv2; for resnet50 they add the stem, which the hand-written list leaves out as DPFPS does (tested).
"""
from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..surgery import prune_model
from .groups import ChannelGroup
from .registry import register_model

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.Mish,
               nn.Hardsigmoid, nn.ELU)
PASS_MODULES = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                nn.AdaptiveMaxPool2d)
ACTIVATION_FNS = {F.relu, F.relu6, torch.relu, F.silu, F.gelu, F.hardswish, torch.sigmoid, F.sigmoid, torch.tanh,
                  F.leaky_relu, F.elu, F.mish, F.hardsigmoid}
ACTIVATION_METHODS = {"relu", "relu_", "sigmoid", "tanh"}
PASS_FNS = {F.dropout, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
PASS_METHODS = {"contiguous", "clone", "float", "to", "type_as"}
BINARY = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.imul, torch.add,
          torch.mul, torch.sub}


@dataclass
class _Space:
    """One channel dimension and every slice of it the walk met (module names)."""
    producers: list[str] = field(default_factory=list)  # non-depthwise first, then depthwise, in graph order
    norms: list[str] = field(default_factory=list)
    consumers: list[tuple[str, int]] = field(default_factory=list)  # (name, repeat)
    pinned: str = ""  # why it may not be pruned ("" = free)
    nonlinear: bool = False
    first: int = 0  # graph position of its first producer (group order)


@dataclass
class _Chan:
    space: int
    flat: int | None = None  # after a flatten: positions per channel (Linear columns per channel)


class _Walk:
    def __init__(self, model: nn.Module, example_input: torch.Tensor, taps):
        self.model = copy.deepcopy(model).eval()  # the trace runs it once: the caller's BN statistics stay
        self.mods = dict(self.model.named_modules())
        try:
            self.gm = fx.symbolic_trace(self.model)
        except Exception as e:
            raise ValueError(f"derive_channel_groups: torch.fx cannot trace {type(model).__name__} "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); write channel_groups() by hand "
                             "(docs/own_network.md)") from None
        with torch.no_grad():
            ShapeProp(self.gm).propagate(example_input.detach().cpu())
        self.parent = []  # union-find over space ids
        self.spaces: list[_Space] = []
        self.chan: dict[fx.Node, _Chan | None] = {}
        self.taps = list(taps)
        self.called: set[str] = set()

    # -- spaces ------------------------------------------------------------------------------------------------
    def new(self, pinned: str = "", pos: int = 0) -> int:
        self.parent.append(len(self.parent))
        self.spaces.append(_Space(pinned=pinned, first=pos))
        return len(self.parent) - 1

    def find(self, s: int) -> int:
        while self.parent[s] != s:
            self.parent[s] = self.parent[self.parent[s]]
            s = self.parent[s]
        return s

    def at(self, node) -> _Space:
        return self.spaces[self.find(self.chan[node].space)]

    def pin(self, s: int, why: str) -> None:
        sp = self.spaces[self.find(s)]
        sp.pinned = sp.pinned or why

    def union(self, a: int, b: int, why: str) -> int:
        a, b = self.find(a), self.find(b)
        if a != b:
            sa, sb = self.spaces[a], self.spaces[b]
            sa.producers += sb.producers
            sa.norms += sb.norms
            sa.consumers += sb.consumers
            sa.nonlinear |= sb.nonlinear
            sa.pinned = sa.pinned or sb.pinned
            sa.first = min(sa.first, sb.first)
            self.parent[b] = a
        self.pin(a, why)
        return a

    # -- the walk ----------------------------------------------------------------------------------------------
    def refuse(self, node, why: str):
        raise ValueError(f"derive_channel_groups: {why} at graph node {node.name!r} ({node.format_node()}); write "
                         "channel_groups() by hand (docs/own_network.md)")

    def tensor_args(self, node) -> list[fx.Node]:
        return [a for a in node.all_input_nodes if self.chan.get(a) is not None]

    def shape(self, node):
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def run(self):
        for pos, node in enumerate(self.gm.graph.nodes):
            self.chan[node] = self.step(node, pos)
        for name in self.taps:  # a tap's output: the last node traced inside that module
            inside = [n for n in self.gm.graph.nodes if name in n.meta.get("nn_module_stack", {})
                      or (n.op == "call_module" and n.target == name)]
            if not inside:
                raise ValueError(f"derive_channel_groups: feature tap {name!r} is not called in the forward pass")
            if self.chan.get(inside[-1]) is not None:
                self.pin(self.chan[inside[-1]].space, f"the output of feature tap {name}")
        return self

    def step(self, node, pos) -> _Chan | None:
        if node.op == "placeholder":
            return _Chan(self.new("the network's input", pos))
        if node.op == "output":
            for a in self.tensor_args(node):
                self.pin(self.chan[a].space, "the network's output")
            return None
        if node.op == "get_attr":
            self.refuse(node, "a parameter or buffer read outside a module")
        args = self.tensor_args(node)
        if node.op == "call_module":
            return self.module(node, self.mods[node.target], args, pos)
        if node.op == "call_function" and node.target is operator.getitem:
            return self.getitem(node, args)
        if node.op in ("call_function", "call_method"):
            return self.function(node, args, pos)
        self.refuse(node, f"unknown node kind {node.op}")

    def module(self, node, m, args, pos):
        if any(True for _ in m.parameters(recurse=False)):
            if node.target in self.called:
                self.refuse(node, f"module {node.target} is called twice (shared weights)")
            self.called.add(node.target)
        if len(args) != 1:
            self.refuse(node, f"{type(m).__name__} with {len(args)} tensor inputs")
        c = self.chan[args[0]]
        if isinstance(m, nn.Conv2d):
            if c.flat is not None:
                self.refuse(node, "a conv reading flattened channels")
            if m.groups == 1:
                self.at(args[0]).consumers.append((node.target, 1))
                out = self.new("", pos)
                self.spaces[out].producers.append(node.target)
                return _Chan(out)
            if m.groups == m.in_channels == m.out_channels:  # depthwise: the same channels, filtered one by one
                self.at(args[0]).producers.append(node.target)
                return c
            self.refuse(node, f"grouped convolution (groups={m.groups}, not depthwise)")
        if isinstance(m, nn.BatchNorm2d):
            self.at(args[0]).norms.append(node.target)
            return c
        if isinstance(m, nn.Linear):
            self.at(args[0]).consumers.append((node.target, c.flat or 1))
            return _Chan(self.new("a Linear layer's output (only conv channels are pruned)", pos))
        if isinstance(m, ACTIVATIONS):
            self.at(args[0]).nonlinear = True
            return c
        if isinstance(m, PASS_MODULES):
            return c
        if isinstance(m, nn.Flatten):
            return self.flatten(node, args[0], m.start_dim, m.end_dim)
        self.refuse(node, f"layer kind {type(m).__name__} is not supported")

    def function(self, node, args, pos):
        t = node.target
        name = t if isinstance(t, str) else getattr(t, "__name__", str(t))
        if not args or self.shape(node) is None:  # sizes, shapes, constants: no channels to follow
            return None
        if t in BINARY:
            if len(args) == 1:  # with a scalar
                return self.chan[args[0]]
            s = self.chan[args[0]].space
            for a in args[1:]:
                s = self.union(s, self.chan[a].space, "a residual add or product couples it with other channels")
            return _Chan(s, self.chan[args[0]].flat)
        if t in ACTIVATION_FNS or (node.op == "call_method" and t in ACTIVATION_METHODS):
            self.at(args[0]).nonlinear = True
            return self.chan[args[0]]
        if t in PASS_FNS or (node.op == "call_method" and t in PASS_METHODS):
            return self.chan[args[0]]
        if t in (torch.flatten, "flatten"):
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            return self.flatten(node, args[0], start, end)
        if t in ("mean", "amax", torch.mean, torch.amax):
            dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            dims, ndim = (dims,) if isinstance(dims, int) else tuple(dims or ()), len(self.shape(args[0]))
            if dims and all(d % ndim >= 2 for d in dims):
                return self.chan[args[0]]
            self.refuse(node, f"{name} over the channel axis")
        if t is F.pad:
            pad = node.args[1] if len(node.args) > 1 else node.kwargs["pad"]
            if len(pad) <= 4:  # spatial only
                return self.chan[args[0]]
            self.pin(self.chan[args[0]].space, "channel padding (an option-A shortcut)")
            return _Chan(self.new("channel padding (an option-A shortcut)", pos))
        if t is torch.cat:
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            if dim in (1, -3) and self.shape(node) is not None and len(self.shape(node)) == 4:
                for a in args:
                    self.pin(self.chan[a].space, "a concatenation")
                return _Chan(self.new("a concatenation", pos))
            self.refuse(node, f"torch.cat along dim {dim}")
        if t in ("view", "reshape", torch.reshape):
            before, after = self.shape(args[0]), self.shape(node)
            if before and after and len(before) == 4 and after == (before[0], before[1] * before[2] * before[3]):
                return _Chan(self.chan[args[0]].space, before[2] * before[3])
            self.refuse(node, "a reshape other than a flatten to (N, C*H*W)")
        self.refuse(node, f"function {name} is not supported")

    def flatten(self, node, arg, start, end):
        shape = self.shape(arg)
        if start == 1 and end in (-1, len(shape) - 1) and len(shape) >= 2 and self.chan[arg].flat is None:
            n = 1
            for d in shape[2:]:
                n *= d
            return _Chan(self.chan[arg].space, n)
        self.refuse(node, f"flatten from dim {start} to {end} (only flatten(1) keeps channels apart)")

    def getitem(self, node, args):
        idx = node.args[1]
        if not args:
            return None
        if not isinstance(idx, tuple):
            idx = (idx,)
        if all(isinstance(i, slice) and i == slice(None) for i in idx[:2]) or \
                (len(idx) == 1 and idx[0] == slice(None)):
            return self.chan[args[0]]  # spatial slicing (a stride-2 subsample) keeps every channel
        self.refuse(node, "indexing on the batch or channel axis")

    def groups(self) -> list[dict]:
        """The prunable spaces as {name, producers, norms, consumers, repeat} (module names), in graph order."""
        out = []
        roots = {self.find(i) for i in range(len(self.spaces))}
        for r in sorted(roots, key=lambda i: self.spaces[i].first):
            sp = self.spaces[r]
            convs = [p for p in sp.producers if self.mods[p].groups == 1]
            if sp.pinned or not sp.nonlinear or len(convs) != 1 or not sp.consumers:
                continue
            repeats = {rep for _, rep in sp.consumers}
            if len(repeats) != 1:
                continue  # read both as a feature map and flattened: keep it whole
            out.append(dict(name=convs[0], producers=sp.producers, norms=sp.norms,
                            consumers=[n for n, _ in sp.consumers], repeat=repeats.pop()))
        return out


def derive_group_spec(model: nn.Module, example_input: torch.Tensor, taps=None) -> list[dict]:
    """The prunable channel groups of `model` as module names (plain data: it survives deepcopy and surgery).
    `taps`: module names whose outputs keep their width (default: the model's `feature_taps()`, if it has one)."""
    if taps is None:
        named = {id(m): n for n, m in model.named_modules()}
        taps = [named[id(m)] for m in (model.feature_taps().values() if hasattr(model, "feature_taps") else [])]
    return _Walk(model, example_input, taps).run().groups()


def groups_from_spec(model: nn.Module, spec: list[dict]) -> list[ChannelGroup]:
    """ChannelGroups over `model`'s live modules, from `derive_group_spec`'s names."""
    mods = dict(model.named_modules())
    return [ChannelGroup(g["name"], [mods[n] for n in g["producers"]], [mods[n] for n in g["norms"]],
                         [mods[n] for n in g["consumers"]], repeat=g["repeat"]) for g in spec]


def derive_channel_groups(model: nn.Module, example_input: torch.Tensor, taps=None) -> list[ChannelGroup]:
    """Prunable channel groups of `model`, derived from its graph traced on `example_input` (see the module doc)."""
    return groups_from_spec(model, derive_group_spec(model, example_input, taps))


class DerivedNet(nn.Module):
    """A traceable network nobody wrote groups for, made a registry network: its groups are derived once (the names
    are kept, so copies and pruned copies need no new trace). `width` scales the derived groups only (the network's
    other layers are its constructor's); `widths` rebuilds a pruned one, keeping each group's first channels."""

    def __init__(self, net: nn.Module, resolution: int = 32, width: float = 1.0, widths=None, taps=()):
        super().__init__()
        self.net, self.input_resolution, self.taps = net, resolution, tuple(taps)
        self.spec = derive_group_spec(self, torch.zeros(2, 3, resolution, resolution), taps=self.taps)
        full = self.widths()
        if widths is None:
            widths = [max(1, int(round(w * width))) for w in full]
        if len(widths) != len(full) or not all(1 <= int(k) <= w for k, w in zip(widths, full)):
            raise ValueError(f"widths: expected {len(full)} widths, each in [1, its full width] ({full}), got {widths}")
        if [int(k) for k in widths] != full:
            self.net = prune_model(self, [torch.arange(w) >= int(k) for w, k in zip(full, widths)]).net

    def forward(self, x):
        return self.net(x)

    def channel_groups(self) -> list[ChannelGroup]:
        return groups_from_spec(self, self.spec)

    def widths(self) -> list[int]:
        return [g.width for g in self.channel_groups()]

    def feature_taps(self) -> dict[str, nn.Module]:
        mods = dict(self.named_modules())
        return {name: mods[name] for name in self.taps}


@register_model
def tv_resnet18(num_classes=10, width=1.0, widths=None):
    """torchvision's ResNet-18 as it is (ImageNet stem) on 32x32 inputs, groups derived: a network nobody wrote
    groups for. Taps: the stage outputs, as for the CIFAR ResNets."""
    from torchvision.models import resnet18

    return DerivedNet(resnet18(num_classes=num_classes), 32, width, widths,
                      taps=[f"net.layer{i}" for i in range(1, 5)])
