"""The language-model tier (``--profile=llm``): cross-entropy at the scale of a language model.

Fused cross-entropy kernels (Liger-Kernel, cut-cross-entropy, torch's chunked
linear_cross_entropy) break only at the scale they are written for: vocabularies of 32k-262k
classes, thousands of tokens, half precision, a share of the targets ignored. Under
``--profile=llm`` the edge-case tests of cross_entropy, nll_loss and linear_cross_entropy run
this catalogue instead of their own (and the random, property and invalid-call tests are left
out): every element of every output and gradient judged against the certified reference.

Not every combination: each row below is one case (one dtype, one reduction), chosen to cover
the odd vocabulary sizes (50,257, 65,537, 128,256, 151,936, 262,144), the three dtypes, 0-50 %
ignored targets, label smoothing, class weights, and realistic logits: 'peaked' (the target,
or another class, 20-40 above the rest, as a trained model's), 'flat' (an untrained model's)
and 'masked' (a tenth of the classes -inf, as in constrained decoding). The shapes fit this
machine and the tier's budget (one candidate in 10 minutes on 2 cores: ``python
benchmarks/suite_wall_time.py --profile=llm --impl=torch`` prints it):
about 3e7 logits per case, so 128-2,048 tokens (fewer at the largest vocabularies; a kernel's
chunking already spans many chunks there), and linear_cross_entropy's hidden sizes 64-128 (the
reference computes every logit exactly: its cost grows with the hidden size). Every case is
certified element by element, which on this machine costs about 0.3 s of CPU per million
logits for value and gradient together (the reference, the tolerance's magnitudes, the case's
construction and the candidate: 120 s for the 4e8 logits of the tier with torch); larger
shapes belong on a machine with more cores, with this catalogue extended.

Measured (2026-12-05, 2 cores, ``-n 2``, reports on): the whole tier takes torch 81 s wall,
torch-chunked (linear_cross_entropy only) 41 s and numpy 128 s (2026-12-03: 185, 116 and 212
s). The slowest tests are nll_loss's at 65 million logits (float32 v32000-t2048-flat, 'none':
about 15 s for the gradient): the case's construction (3 s), the reference's (M, C) results
with their long double estimates (1 GB of zeros but at the targets), the tolerance's scales
and the comparison of every element. Every linear_cross_entropy logit is exact (a few float64
products, ``loss_reference/split_product.py``), so 64-bit balls and double-double certify
every weight and bias gradient element (arb's recomputation of the whole batch took 881 s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cases import Case, round_to

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Shape:
    """One case of the tier."""

    id: str
    dtype: str
    reduction: str
    tokens: int
    vocabulary: int
    logits: str  # 'peaked', 'flat' or 'masked'
    ignored: float  # share of the targets set to ignore_index
    hidden: int = 0  # linear_cross_entropy's in_features
    smoothing: float = 0.0
    weighted: bool = False


CROSS_ENTROPY = (
    Shape("v32000-t1024-peaked", "bfloat16", "mean", 1024, 32000, "peaked", 0.1),
    Shape("v50257-t512-flat", "float32", "sum", 512, 50257, "flat", 0.0, weighted=True),
    Shape("v65537-t512-masked", "float16", "none", 512, 65537, "masked", 0.5),
    Shape("v128256-t256-smoothing", "bfloat16", "mean", 256, 128256, "peaked", 0.3,
          smoothing=0.1),
    Shape("v151936-t256-peaked", "float32", "none", 256, 151936, "peaked", 0.2),
    Shape("v262144-t128-flat", "bfloat16", "mean", 128, 262144, "flat", 0.0),
)
NLL = (
    Shape("v128256-t512-peaked", "bfloat16", "mean", 512, 128256, "peaked", 0.3),
    Shape("v32000-t2048-flat", "float32", "none", 2048, 32000, "flat", 0.1, weighted=True),
)
LINEAR = (
    Shape("v32000-t512-d128", "bfloat16", "mean", 512, 32000, "peaked", 0.1, hidden=128),
    Shape("v50257-t256-d128", "float32", "sum", 256, 50257, "flat", 0.0, hidden=128),
    Shape("v128256-t256-d64", "bfloat16", "none", 256, 128256, "peaked", 0.3, hidden=64),
    Shape("v65537-t256-d64-smoothing", "float16", "mean", 256, 65537, "flat", 0.2,
          hidden=64, smoothing=0.1),
)
TIER = {"cross_entropy": CROSS_ENTROPY, "nll_loss": NLL, "linear_cross_entropy": LINEAR}


def _targets(shape: Shape, rng):
    target = rng.integers(0, shape.vocabulary, shape.tokens)
    target[rng.random(shape.tokens) < shape.ignored] = IGNORE_INDEX
    return target


def _logits(shape: Shape, target, rng):
    """Logits of the shape's kind (float64, to be rounded to the dtype)."""
    x = rng.standard_normal((shape.tokens, shape.vocabulary), dtype=np.float32).astype(
        np.float64) * 2
    if shape.logits == "peaked":
        rows = np.arange(shape.tokens)
        other = rng.integers(0, shape.vocabulary, shape.tokens)
        peak = np.where(rng.random(shape.tokens) < 0.8, np.where(target >= 0, target, other),
                        other)
        x[rows, peak] += rng.uniform(20, 40, shape.tokens)
    elif shape.logits == "masked":
        masked = rng.random(x.shape) < 0.1
        masked[np.arange(shape.tokens), np.where(target >= 0, target, 0)] = False
        x[masked] = -np.inf
    return x


def _weight(shape: Shape, rng):
    return rng.uniform(0.5, 2.0, shape.vocabulary) if shape.weighted else None


def _options(shape: Shape, loss: str) -> dict:
    options = {"reduction": shape.reduction}
    if shape.smoothing:
        options["label_smoothing"] = shape.smoothing
    if loss == "linear_cross_entropy":
        options["ignore_index"] = IGNORE_INDEX
    return options


def _upstream(shape: Shape, rng):
    if shape.reduction == "none":
        return rng.uniform(-2, 2, shape.tokens)
    return np.array(0.75)


def build(loss: str, shape: Shape, seed: int) -> Case:
    """The tier's case ``shape`` of ``loss``, its values drawn from ``seed``."""
    rng = np.random.default_rng([seed, shape.vocabulary, shape.tokens])
    target = _targets(shape, rng)
    dtype = shape.dtype
    weight = _weight(shape, rng)
    weight = None if weight is None else round_to(weight, dtype)
    tags = ("llm", shape.logits, f"vocabulary-{shape.vocabulary}")
    if loss == "linear_cross_entropy":
        x = rng.standard_normal((shape.tokens, shape.hidden), dtype=np.float32)
        W = rng.standard_normal((shape.vocabulary, shape.hidden), dtype=np.float32)
        W /= np.sqrt(shape.hidden) / (3.0 if shape.logits == "peaked" else 1.0)
        args = {"input": round_to(x.astype(np.float64), dtype),
                "linear_weight": round_to(W.astype(np.float64), dtype), "target": target,
                "linear_bias": None, "weight": weight}
    else:
        x = _logits(shape, target, rng)
        if loss == "nll_loss":  # log-probabilities: minus each row's log-sum-exp
            top = np.max(x, axis=1, keepdims=True)
            with np.errstate(under="ignore"):
                x = x - (top + np.log(np.sum(np.exp(x - top), axis=1, keepdims=True)))
        finite = np.isfinite(x)
        x = round_to(x, dtype) if finite.all() else np.where(
            finite, round_to(np.where(finite, x, 0.0), dtype), x)
        args = {"input": x, "target": target, "weight": weight}
    return Case(dtype, args, _options(shape, loss), {}, tags,
                grad_output=round_to(_upstream(shape, rng), dtype))


def llm_cases(loss: str):
    """The Spec's ``llm(variant)``: the tier's cases of ``loss`` for the variant's dtype and
    reduction, as (id, build) with ``build(seed) -> Case`` (built when their test runs: a
    case holds up to a gigabyte)."""
    def cases(variant):
        reduction = variant.option_dict()["reduction"]
        return [(shape.id, lambda seed, shape=shape: build(loss, shape, seed))
                for shape in TIER[loss]
                if shape.dtype == variant.dtype and shape.reduction == reduction]
    return cases
