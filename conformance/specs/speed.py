"""The pieces every loss's speed ladder shares: sizes, typical values, byte counts, kernels.

A ladder (``specs.SpeedLadder``) builds typical inputs at each size and counts what a call must
move: each input read once (floats in the dtype under test, integer targets at their own width),
the output written once and, for forward+backward, the upstream gradient read and the gradient
of each differentiated argument written once. ``ladder(...)`` builds one from a case builder,
the arrays it reads, the shape of its output and the name of its elementwise work
(``KERNELS``), so that a family declares only what is its own; ``variant(...)`` declares
another common option set (timed at the variant rung); ``linear_cross_entropy_ladder()`` is the
ladder of the one loss whose work is a matrix product.

Sizes: one per rung of ``specs.RUNGS``. The (rows, classes) ladder ``MATRIX_SIZES`` holds 640,
256K, 1M, 4M and 32M elements: inside L1, about L2 (1 MiB of float32), inside the last-level
cache, 16 MiB (rotated over input sets that together exceed the last-level cache, so every call
reads memory; see ``conformance.timing.input_sets``) and 128 MiB (one call out of every cache;
not timed unless ``--speed-sizes`` names it).
"""

from __future__ import annotations

import math

import numpy as np

from ..cases import Case
from . import SpeedLadder

ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}


def _numpy_dtype(dtype: str):
    """numpy's type for ``dtype``; ml_dtypes (bfloat16) is imported on first use, since its
    import registers hundreds of ufunc loops: a second of every run's start-up otherwise."""
    if dtype == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return {"float64": np.float64, "float32": np.float32, "float16": np.float16}[dtype]

# One size per rung (tiny, small, medium, large, huge).
MATRIX_SIZES = ((64, 10), (256, 1000), (1024, 1000), (4096, 1000), (1024, 32768))
FLAT_SIZES = tuple((rows * columns,) for rows, columns in MATRIX_SIZES)
IGNORED_SHARE = 0.1  # of the rows with ignore_index: padding in a batch of sequences
IGNORE_INDEX = -100  # torch's default ignore_index


# --- values --------------------------------------------------------------------------------------

def in_dtype(values, dtype: str) -> np.ndarray:
    """Values made numbers of ``dtype`` by a cast (round to nearest even; typical values never
    reach the clamping of ``cases.round_to``, which is too slow for tens of millions), held in
    float32 (float64 for float64): exactly the same numbers as the float64 arrays of the
    accuracy Cases, at half the memory and conversion time for the largest sizes."""
    wide = np.float64 if dtype == "float64" else np.float32
    values = np.asarray(values, wide)
    if dtype in ("float64", "float32"):
        return values
    return values.astype(_numpy_dtype(dtype)).astype(np.float32)


def normal_values(size, dtype: str, rng, scale: float = 1.0) -> np.ndarray:
    """Standard normal values times ``scale``, holding numbers of ``dtype``."""
    wide = np.float64 if dtype == "float64" else np.float32
    return in_dtype(rng.standard_normal(size, dtype=wide) * wide(scale), dtype)


def log_softmax(logits) -> np.ndarray:
    """log_softmax over the last axis, in float64, by the usual shift by the row maximum (fast:
    typical values need no exact sum)."""
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    with np.errstate(under="ignore"):
        return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def uniform_values(size, dtype: str, rng, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Uniform values in [low, high), holding numbers of ``dtype`` (clipped inside the interval
    after rounding, for probabilities that must stay off 0 and 1)."""
    wide = np.float64 if dtype == "float64" else np.float32
    values = in_dtype(rng.random(size, dtype=wide) * wide(high - low) + wide(low), dtype)
    return np.clip(values, low, high)


def signs(size, rng) -> np.ndarray:
    """Targets of +1 and -1 in equal shares (float64)."""
    return np.where(rng.random(size, dtype=np.float32) < 0.5, -1.0, 1.0)


def class_targets(rows: int, classes: int, rng, ignored: float = 0.0) -> np.ndarray:
    """Class indices (int64), a share ``ignored`` of them set to torch's ignore_index -100."""
    target = rng.integers(0, classes, rows)
    if ignored:
        target[rng.random(rows) < ignored] = IGNORE_INDEX
    return target


def class_weights(case, rng) -> np.ndarray:
    """A weight per class (the last axis of the case's input), in the case's dtype, 0.5 to 2."""
    classes = np.shape(case.args["input"])[-1]
    return uniform_values(classes, case.dtype, rng, 0.5, 2.0)


def elementwise_weights(case, rng) -> np.ndarray:
    """A weight per element of the case's input, in the case's dtype, 0.5 to 2."""
    return uniform_values(np.shape(case.args["input"]), case.dtype, rng, 0.5, 2.0)


def typical_case(dtype: str, args: dict, options: dict, output=None) -> Case:
    """A Case tagged "speed" whose upstream gradient is ones of ``output(case)``'s shape (a
    scalar 1 by default: the reductions 'mean' and 'sum')."""
    case = Case(dtype, args, options, {}, ("speed",), grad_output=np.array(1.0))
    if output is not None:
        case.grad_output = np.ones(output(case))
    return case


# --- output shapes -------------------------------------------------------------------------------

def elementwise_output(case, name: str = "input") -> tuple:
    """The output of a loss with one term per element of ``name``: its shape for 'none'."""
    if case.options.get("reduction") == "none":
        return np.shape(case.args[name])
    return ()


def rows_output(case, name: str = "input") -> tuple:
    """The output of a loss with one term per row of ``name``: (rows,) for 'none'."""
    if case.options.get("reduction") == "none":
        return np.shape(case.args[name])[:1]
    return ()


def output_of(shape, name: str):
    """``shape`` (elementwise_output or rows_output) of the array ``name``, as a function."""
    return lambda case: shape(case, name)


# --- counts --------------------------------------------------------------------------------------

def bytes_moved(case, backward: bool, read, output_elements: int,
                differentiated=("input",)) -> int:
    """Bytes one call moves: the arrays named in ``read`` read once, ``output_elements`` written
    once; with ``backward`` also the upstream gradient read and the gradient of each array in
    ``differentiated`` written."""
    item = ITEMSIZE.get(case.dtype, 4)
    arrays = [np.asarray(case.args[n]) for n in read if case.args.get(n) is not None]
    inputs = sum(a.size * (item if a.dtype.kind == "f" else a.itemsize) for a in arrays)
    outputs = output_elements * item
    if backward:
        outputs += output_elements * item + sum(
            np.size(case.args[n]) * item for n in differentiated if case.args.get(n) is not None)
    return int(inputs + outputs)


# --- elementwise work: what the compute roof times, per kind of loss -----------------------------
# Each kernel does one unit of a loss's elementwise work on every element of a torch tensor; the
# suite times it on a cache-resident block (conformance.timing.compute_rate).

def _exp(x):
    import torch
    return torch.exp(x)


def _softplus(x):
    import torch
    return torch.nn.functional.softplus(x)


def _abs_difference(x):
    import torch
    return torch.abs(x - 0.5)


def _squared_difference(x):
    import torch
    return torch.square(x - 0.5)


def _huber(x):
    import torch
    d = torch.abs(x - 0.5)
    return torch.where(d < 1, 0.5 * d * d, d - 0.5)


def _log(x):
    import torch
    return torch.log(torch.abs(x) + 0.5)


def _two_logs(x):
    import torch
    p = torch.sigmoid(x)
    return torch.log(p) + torch.log1p(-p)


def _gaussian(x):
    import torch
    var = torch.abs(x) + 0.5
    return torch.log(var) + torch.square(x - 0.5) / var


def _hinge(x):
    import torch
    return torch.clamp_min(1 - x, 0)


def _negate(x):
    import torch
    return torch.neg(x)


def _products(x):
    import torch
    return torch.addcmul(x, x, x)


def _two_distances(x):
    import torch
    return torch.square(x - 0.5) + torch.square(x + 0.5)


def _logaddexp(x):
    import torch
    return torch.logaddexp(x, 0.5 - x)


def _store(x):
    import torch
    return torch.ones_like(x)


KERNELS = {
    "exp": ("one exp per element (a softmax)", _exp),
    "softplus": ("one exp and one log1p per element (softplus)", _softplus),
    "abs_difference": ("one subtraction and one absolute value per element", _abs_difference),
    "squared_difference": ("one subtraction and one square per element", _squared_difference),
    "huber": ("a subtraction, an absolute value, a compare and a select per element", _huber),
    "log": ("one log per element", _log),
    "two_logs": ("two logs per element (log p and log(1-p))", _two_logs),
    "gaussian": ("one log, one square and one division per element", _gaussian),
    "hinge": ("one subtraction and one max per element (a hinge)", _hinge),
    "gather": ("one negation per row (the gathered term)", _negate),
    "products": ("one multiply-add per element and product (dot products)", _products),
    "two_distances": ("two differences and two squares per element (two distances)",
                      _two_distances),
    "logaddexp": ("one logaddexp per lattice cell (the CTC recursion)", _logaddexp),
    "store": ("one store per output element", _store),
}


# --- ladders -------------------------------------------------------------------------------------

def variant(output=elementwise_output, arrays=None, **options):
    """A variant of a ladder's typical call: ``options`` replace the case's options, ``arrays``
    (name -> function(case, rng) -> array, or None to drop it) its arrays; the upstream gradient
    follows ``output`` (ones of the output's shape for reduction='none')."""
    def build(case, rng):
        args = dict(case.args)
        for name, make in (arrays or {}).items():
            args[name] = None if make is None else make(case, rng)
        return typical_case(case.dtype, args, {**case.options, **options}, output)
    return build


def ladder(case, *, read, kernel, output=elementwise_output, elements=None,
           differentiated=("input",), sizes=MATRIX_SIZES, variants=(), flops=None, dtypes=None,
           inputs="", moved=None) -> SpeedLadder:
    """A SpeedLadder from its parts: ``case(size, dtype, rng)``; the arrays ``read`` (in the
    byte count); ``kernel``, a name in ``KERNELS``; ``output(case)``, the output's shape;
    ``elements(case)``, the units of that work (default: the elements of the first
    differentiated array); ``variants``, (name, ``variant(...)``) pairs; ``moved(case,
    backward)`` replaces the byte count where ``read`` and ``output`` cannot say it."""
    work, function = KERNELS[kernel]
    main = (differentiated or read)[0]

    def count_bytes(case, backward):
        return bytes_moved(case, backward, read, math.prod(output(case)), differentiated)

    def count(case):
        return int(np.size(case.args[main]))

    return SpeedLadder(sizes=tuple(sizes), case=case, bytes_moved=moved or count_bytes,
                       elements=elements or count, work=work, kernel=function,
                       differentiated=tuple(differentiated), flops=flops,
                       variants=tuple(variants), dtypes=dtypes, inputs=inputs)


# --- linear_cross_entropy: a matrix product, then cross-entropy over a vocabulary --------------

# (tokens, hidden, vocabulary): logits of 2K, 128K, 2M, 8M (32 MiB in float32) and 128M elements
# (512 MiB in float32, what a fused kernel never materialises; with --speed-sizes=huge). One
# forward at the last is 2 * 4096 * 128 * 32768 = 34 GFLOP: about 0.5 s at this machine's float32
# matrix-product rate, the forward+backward three times that; torch's chunked path took 5 times
# as long here (6.8 s at 2048 x 128 x 16384), hence the smaller default rungs.
LINEAR_SIZES = ((16, 32, 128), (128, 64, 1024), (512, 64, 4096), (1024, 128, 8192),
                (4096, 128, 32768))


def _linear_case(size, dtype, rng):
    """A language model's head: activations of spread 1, a classifier of spread 1/sqrt(hidden)
    (logits of spread about 1), targets over the vocabulary with a tenth ignored (-100, torch's
    default for ignore_index=None), no bias, 'mean'."""
    tokens, hidden, vocabulary = size
    args = {"input": normal_values((tokens, hidden), dtype, rng),
            "linear_weight": normal_values((vocabulary, hidden), dtype, rng,
                                           scale=1 / math.sqrt(hidden)),
            "target": class_targets(tokens, vocabulary, rng, IGNORED_SHARE),
            "linear_bias": None, "weight": None}
    return typical_case(dtype, args, {"reduction": "mean"})


def _linear_flops(case, backward: bool) -> int:
    """The matrix products: logits (2 T H V); backward: the input's and the classifier's
    gradients, one product each (4 T H V more)."""
    tokens, hidden = np.shape(case.args["input"])
    vocabulary = np.shape(case.args["linear_weight"])[0]
    return 2 * tokens * hidden * vocabulary * (3 if backward else 1)


def _linear_elements(case) -> int:
    """One exp per logit (the softmax over the vocabulary)."""
    return int(np.shape(case.args["input"])[0] * np.shape(case.args["linear_weight"])[0])


def linear_cross_entropy_ladder() -> SpeedLadder:
    """The ladder of linear_cross_entropy(input, linear_weight, target, ...): (tokens, hidden,
    vocabulary) from 16 x 32 x 128 to 1024 x 128 x 8192 (4096 x 128 x 32768 with
    ``--speed-sizes=huge``); gradients of input and linear_weight; three roofs: the bytes of
    the inputs, outputs and gradients (not the logits: a fused kernel never writes them), one
    exp per logit, and the matrix products at this machine's measured rate. Variants at the
    medium rung: label smoothing 0.1, class weights, reduction='none'."""
    read = ("input", "linear_weight", "target", "linear_bias", "weight")
    return ladder(
        _linear_case, read=read, kernel="exp", output=rows_output, elements=_linear_elements,
        differentiated=("input", "linear_weight"), sizes=LINEAR_SIZES, flops=_linear_flops,
        variants=(("smoothing", variant(rows_output, label_smoothing=0.1)),
                  ("weighted", variant(rows_output, arrays={"weight": _vocabulary_weights})),
                  ("none", variant(rows_output, reduction="none"))),
        inputs="activations N(0,1), classifier N(0,1/hidden), a tenth of the targets ignored, "
               "'mean'")


def _vocabulary_weights(case, rng) -> np.ndarray:
    return uniform_values(np.shape(case.args["linear_weight"])[0], case.dtype, rng, 0.5, 2.0)
