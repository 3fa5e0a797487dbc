"""Framework adapters: how a candidate's arrays are made, read back and differentiated.

An adapter turns a Case's exact numpy values into the framework's arrays (in the dtype under
test, on the device, in the case's layout), reads outputs back as float64 numpy arrays with
their dtype name, checks that inputs were left as they were, and computes the gradients of an
output for an upstream gradient with the framework's own autodiff. Adding a framework is one
module here with a class like ``TorchFramework``, registered in ``FRAMEWORKS``.
"""

from __future__ import annotations


class WrongOutput(Exception):
    """The candidate returned something that is not an array of the expected kind."""


class ForwardOnly(Exception):
    """The candidate's output carries no gradient (or it has no gradient function)."""


class DtypeRefused(Exception):
    """The candidate declined a dtype it does not implement."""


def framework_named(name: str):
    """The adapter for a framework name ('torch', 'numpy' or 'jax'); ValueError for others."""
    if name == "torch":
        from .torch_adapter import TorchFramework

        return TorchFramework()
    if name == "numpy":
        from .numpy_adapter import NumpyFramework

        return NumpyFramework()
    if name == "jax":
        from .jax_adapter import JaxFramework

        return JaxFramework()
    raise ValueError(f"unknown framework {name!r}: FRAMEWORK must be 'torch', 'numpy' or 'jax'")
