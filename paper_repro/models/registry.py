"""The registry of networks by name: each builder registers itself where it is defined (`@register_model`)."""
from __future__ import annotations

MODELS: dict = {}  # name -> builder(num_classes, width, widths), in the order the model modules define them


def register_model(builder):
    """Register `builder` under its function name (what `build_model` and the command line call it)."""
    if builder.__name__ in MODELS:
        raise ValueError(f"model {builder.__name__!r} is registered twice")
    MODELS[builder.__name__] = builder
    return builder
