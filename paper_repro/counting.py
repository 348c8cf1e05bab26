"""Params and MACs (docs/method.md §4): measured with fvcore, and analytically as a function of channel widths.

FLOPs here are multiply-adds of conv + linear layers for one 32x32 image: the CIFAR pruning convention
(ResNet-56 = 0.85M params / 125.49M); a network that sets `input_resolution` (ResNet-50: 224) is counted at
that size instead, the ImageNet convention (ResNet-50 = 25,557,032 params). fvcore also counts batch-norm by
default, so its handles are cleared and only conv and linear are registered again. The analytic `CostModel`
gives the same numbers for any per-group keep counts without building a network; the allocation bisection calls
it many times. `count_row` sets our count beside Torch-Pruning's and explains the difference term by term
(notebook 07).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from .models import ChannelGroup


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # all of ours are trainable; a frozen teacher counts too


def default_input_size(model: nn.Module, resolution: int | None = None) -> tuple[int, int, int, int]:
    """(1, 3, r, r): r = `resolution`, else the model's `input_resolution`, else 32 (CIFAR)."""
    r = resolution or getattr(model, "input_resolution", 32)
    return (1, 3, r, r)


def count_macs(model: nn.Module, input_size=None) -> int:
    warnings.filterwarnings("ignore", message=".*torch.jit.*", category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import addmm_flop_jit, conv_flop_jit, linear_flop_jit, matmul_flop_jit

    was_training = model.training
    model.eval()
    x = torch.zeros(input_size or default_input_size(model), device=next(model.parameters()).device)
    fca = FlopCountAnalysis(model, x)
    fca.clear_op_handles()
    fca.set_op_handle("aten::_convolution", conv_flop_jit, "aten::addmm", addmm_flop_jit,
                      "aten::linear", linear_flop_jit, "aten::matmul", matmul_flop_jit)
    fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    total = int(fca.total())
    model.train(was_training)
    return total


@dataclass
class _Layer:
    kind: str  # conv | linear | bn
    coef: int  # kernel area (conv), 1 (linear, bn)
    spatial: int  # output positions (conv MACs), 1 otherwise
    in_fixed: int
    out_fixed: int
    in_group: int = -1  # index of the channel group that sets the input width, -1 if fixed
    out_group: int = -1
    in_repeat: int = 1
    depthwise: bool = False
    bias: bool = False


class CostModel:
    """Params and MACs of `model` as a function of how many channels each prunable group keeps.

    Built once from the full model (one forward pass to read output sizes); `cost(keep)` then takes a
    list or tensor of per-group channel counts and returns (params, macs) exactly as a rebuilt network
    would count them."""

    def __init__(self, model: nn.Module, groups: list[ChannelGroup] | None = None, input_size=None):
        groups = groups if groups is not None else model.channel_groups()
        self.widths = [g.width for g in groups]
        out_of, in_of, bn_of = {}, {}, {}
        for gi, g in enumerate(groups):
            for p in g.producers:
                out_of[id(p)] = gi
            for c in g.consumers:
                in_of[id(c)] = (gi, g.repeat)
            for bn in g.norms:
                bn_of[id(bn)] = gi
        spatial = {}
        hooks = [m.register_forward_hook(lambda m, i, o: spatial.__setitem__(id(m), o.shape[-1] * o.shape[-2]))
                 for m in model.modules() if isinstance(m, nn.Conv2d)]
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_size or default_input_size(model), device=next(model.parameters()).device))
        model.train(was_training)
        for h in hooks:
            h.remove()
        self.layers: list[_Layer] = []
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                dw = m.groups > 1
                if dw and m.groups != m.in_channels:
                    raise NotImplementedError("grouped (non-depthwise) convolutions are not supported")
                L = _Layer("conv", m.kernel_size[0] * m.kernel_size[1], spatial[id(m)], m.in_channels,
                           m.out_channels, depthwise=dw, bias=m.bias is not None)
                L.out_group = out_of.get(id(m), -1)
                if dw:
                    L.in_group = L.out_group
                elif id(m) in in_of:
                    L.in_group, L.in_repeat = in_of[id(m)]
                self.layers.append(L)
            elif isinstance(m, nn.Linear):
                L = _Layer("linear", 1, 1, m.in_features, m.out_features, bias=m.bias is not None)
                if id(m) in in_of:
                    L.in_group, L.in_repeat = in_of[id(m)]
                self.layers.append(L)
            elif isinstance(m, nn.BatchNorm2d):
                self.layers.append(_Layer("bn", 1, 1, m.num_features, m.num_features,
                                          out_group=bn_of.get(id(m), -1)))

    def cost(self, keep, conv_only: bool = False) -> tuple[int, int]:
        """(params, MACs) with keep[g] channels in group g. conv_only: count conv layers only (DPFPS's
        FLOPs convention, which ignores the FC layers; its 2x factor cancels in a ratio)."""
        keep = [int(k) for k in keep]
        params = macs = 0
        for L in self.layers:
            out = keep[L.out_group] if L.out_group >= 0 else L.out_fixed
            inp = keep[L.in_group] * L.in_repeat if L.in_group >= 0 else L.in_fixed
            if L.kind == "bn":
                params += 2 * out
                continue
            if conv_only and L.kind != "conv":
                continue
            w = out * (1 if L.depthwise else inp) * L.coef
            params += w + (out if L.bias else 0)
            macs += w * L.spatial
        return params, macs

    def full(self) -> tuple[int, int]:
        return self.cost(self.widths)


def count(model: nn.Module, input_size=None) -> dict:
    return {"params": count_params(model), "macs": count_macs(model, input_size)}


def count_row(name: str, model, input_size=(1, 3, 32, 32)) -> dict:
    """Our count (fvcore: conv + linear multiply-adds; all parameters) beside Torch-Pruning's
    `tp.utils.count_ops_and_params`, with TP's extra MACs split by module type.

    TP's counter hooks modules: it adds BatchNorm (2 ops per element, affine), pooling (1 per input element)
    and linear/conv biases to the multiply-adds, and counts nn.ReLU modules (ours are functional, so none).
    `unexplained` is what remains of the difference after those terms; 0 means the two agree exactly."""
    import torch_pruning as tp

    model = model.eval()
    x = torch.zeros(input_size, device=next(model.parameters()).device)
    ours = count(model)
    macs_tp, params_tp, layer_flops, _ = tp.utils.count_ops_and_params(model, x, layer_wise=True)
    bn = sum(layer_flops[m] or 0 for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    pool = sum(layer_flops[m] or 0 for m in model.modules()
               if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveMaxPool2d)))
    relu = sum(layer_flops[m] or 0 for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6)))
    bias = sum(m.out_features for m in model.modules() if isinstance(m, nn.Linear) and m.bias is not None)
    bias += sum(m.out_channels * s for m, s in _conv_bias_positions(model, x))
    analytic = CostModel(model).cost(model.widths())[1] if hasattr(model, "widths") else None
    macs_tp = int(macs_tp)
    diff = macs_tp - ours["macs"]
    return dict(model=name, params_ours=ours["params"], params_tp=int(params_tp),
                params_diff=int(params_tp) - ours["params"], macs_ours=ours["macs"], macs_analytic=analytic,
                macs_tp=macs_tp, macs_diff=diff, macs_diff_pct=100 * diff / ours["macs"], tp_bn=int(bn),
                tp_pool=int(pool), tp_relu=int(relu), tp_bias=int(bias),
                unexplained=int(diff - bn - pool - relu - bias))


def _conv_bias_positions(model, x):
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    if not convs:
        return []
    sizes = {}
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.__setitem__(m, o.shape[-1] * o.shape[-2]))
             for m in convs]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return [(m, sizes[m]) for m in convs]
