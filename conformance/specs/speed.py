"""The pieces every loss's speed ladder shares: typical values in a dtype, and byte counts.

A ladder (``specs.SpeedLadder``) builds typical inputs at each size and counts what a call must
move: each input read once (floats in the dtype under test, integer targets at their own width),
the output written once and, for forward+backward, the upstream gradient read and the gradient
of each differentiated argument written once.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
NUMPY_DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16,
                "bfloat16": ml_dtypes.bfloat16}


def in_dtype(values, dtype: str) -> np.ndarray:
    """float64 values made numbers of ``dtype`` by a cast (round to nearest even; typical values
    never reach the clamping of ``cases.round_to``, which is too slow for tens of millions)."""
    wide = np.float64 if dtype == "float64" else np.float32
    return np.asarray(values, wide).astype(NUMPY_DTYPES[dtype]).astype(np.float64)


def normal_values(size, dtype: str, rng, scale: float = 1.0) -> np.ndarray:
    """Standard normal values times ``scale``, holding numbers of ``dtype``."""
    wide = np.float64 if dtype == "float64" else np.float32
    return in_dtype(rng.standard_normal(size, dtype=wide) * wide(scale), dtype)


def bytes_moved(case, backward: bool, read, output_elements: int,
                differentiated=("input",)) -> int:
    """Bytes one call moves: the arrays named in ``read`` read once, ``output_elements`` written
    once; with ``backward`` also the upstream gradient read and the gradient of each array in
    ``differentiated`` written."""
    item = ITEMSIZE[case.dtype]
    arrays = [np.asarray(case.args[n]) for n in read if case.args.get(n) is not None]
    inputs = sum(a.size * (item if a.dtype.kind == "f" else a.itemsize) for a in arrays)
    outputs = output_elements * item
    if backward:
        outputs += output_elements * item + sum(
            np.size(case.args[n]) * item for n in differentiated if case.args.get(n) is not None)
    return int(inputs + outputs)
