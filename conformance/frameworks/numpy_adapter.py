"""The numpy adapter: arrays in every layout; gradients from the module's ``<name>_vjp``."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import re
from pathlib import Path

import ml_dtypes
import numpy as np

from . import DtypeRefused, ForwardOnly, WrongOutput

DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16,
          "bfloat16": ml_dtypes.bfloat16}


def _layout(array: np.ndarray, layout: str) -> np.ndarray:
    if layout == "transposed" and array.ndim == 2:
        return np.ascontiguousarray(array.T).T
    if layout == "sliced" and array.ndim >= 1:
        wide = np.zeros(array.shape[:-1] + (2 * array.shape[-1] + 1,), dtype=array.dtype)
        wide[..., 1::2] = array
        return wide[..., 1::2]
    if layout == "expanded" and array.ndim >= 1 and array.shape[0] > 0:
        return np.broadcast_to(array[:1], array.shape)  # read-only, stride 0
    return array


def _root(array: np.ndarray):
    """The array that owns ``array``'s memory, or None if it owns its own."""
    root = None
    while isinstance(array.base, np.ndarray):
        root = array = array.base
    return root


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equality of two arrays of one dtype and shape."""
    return a.shape == b.shape and np.ascontiguousarray(a).tobytes() == \
        np.ascontiguousarray(b).tobytes()


@functools.cache
def _openblas():
    """(get, set) thread-count functions of the OpenBLAS numpy is linked with, or None (not
    Linux, another BLAS): what threadpoolctl does, for the one library numpy ships."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for path in sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", maps))):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                    return get, put
    return None


class NumpyFramework:
    """Candidates that take and return numpy arrays (module attribute FRAMEWORK = "numpy").

    Gradients: a module may define ``<loss>_vjp(grad_output, *args, **kwargs)`` returning a
    dict of gradients by argument name; without it the candidate is forward-only.
    """

    name = "numpy"
    torch_threads = False  # numpy calls do not use torch's threads
    device = "cpu"

    @staticmethod
    def version() -> str:
        return np.__version__

    def warm_up(self):
        """Nothing to start."""

    def to_native(self, values, dtype, layout="contiguous", requires_grad=False):
        if not isinstance(values, np.ndarray):
            return values
        kind = DTYPES[dtype] if values.dtype.kind == "f" else np.int64
        return _layout(values.astype(kind), layout)

    @staticmethod
    def snapshot(native):
        """Copies of the array and of the array it views, if any (the memory around a view is
        not the candidate's to write either)."""
        if not isinstance(native, np.ndarray):
            return None
        root = _root(native)
        return native.copy(), None if root is None else root.copy()

    @staticmethod
    def unchanged(native, snapshot) -> bool:
        if snapshot is None:
            return True
        view, root = snapshot
        return (_same(native, view)) and (root is None or _same(_root(native), root))

    @staticmethod
    def read_output(output):
        if isinstance(output, np.generic):
            output = np.asarray(output)
        if not isinstance(output, np.ndarray):
            raise WrongOutput(f"returned {type(output).__name__}, expected a numpy array")
        return output.astype(np.float64), output.dtype.name

    def gradients(self, output, inputs: dict, grad_output, dtype: str, vjp=None, args=(),
                  kwargs=None, function=None) -> dict:
        """Gradients for each named input from ``vjp(grad_output, *args, **kwargs)``."""
        if vjp is None:
            raise ForwardOnly("the module defines no <name>_vjp gradient function")
        upstream = np.asarray(grad_output, dtype=np.float64).astype(DTYPES[dtype])
        grads = vjp(upstream, *args, **(kwargs or {}))
        if not isinstance(grads, dict):
            raise WrongOutput(f"the _vjp function returned {type(grads).__name__}, expected a "
                              "dict of gradients by argument name")
        return {n: None if grads.get(n) is None else self.read_output(grads[n]) for n in inputs}

    @staticmethod
    def timed_calls(function, args, kwargs, leaves: dict, upstream, vjp=None):
        """(forward, forward+backward) closures for timing: the call, and the call then the
        module's ``<name>_vjp`` (None: forward-only)."""
        def forward():
            return function(*args, **kwargs)

        def forward_backward():
            forward()
            vjp(upstream, *args, **kwargs)

        return forward, forward_backward

    @staticmethod
    def differentiates(output, vjp=None) -> bool:
        """Whether the module gives gradients (a ``<name>_vjp`` function)."""
        return callable(vjp)

    @staticmethod
    @contextlib.contextmanager
    def thread_limit(threads: int):
        """numpy's BLAS (OpenBLAS: matrix products) on ``threads`` threads inside the block, as
        the speed harness runs torch: its default, every core, waits for a busy CPU on a
        shared machine just as torch's pool does. Nothing where the BLAS is not found."""
        blas = _openblas()
        if blas is None:
            yield
            return
        get, put = blas
        previous = get()
        put(threads)
        try:
            yield
        finally:
            put(previous)

    @staticmethod
    def synchronize():
        """numpy computes eagerly: nothing to wait for."""

    @staticmethod
    def refusal(error: BaseException):
        """A DtypeRefused for NotImplementedError (how a numpy candidate declines a dtype)."""
        if isinstance(error, NotImplementedError):
            return DtypeRefused(str(error).splitlines()[0] if str(error) else "NotImplementedError")
        return None
