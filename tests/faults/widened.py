"""Not a candidate: torch's losses evaluated in float64 and rounded to the input's dtype.

In float32 this is a correct candidate without torch's own intermediate overflows (see
conformance/deviations), so a faulty candidate built on it fails for its fault alone.
"""
import torch


def _wide(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.double()
    return value


def widened(loss):
    """``loss`` computed in float64, returned in its input's dtype (gradients flow through)."""
    def function(input, *args, **kwargs):
        out = loss(_wide(input), *map(_wide, args),
                   **{name: _wide(value) for name, value in kwargs.items()})
        return out.to(input.dtype)
    function.__name__ = loss.__name__
    return function
