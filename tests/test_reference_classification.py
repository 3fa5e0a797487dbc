"""The classification references (loss_reference/classification.py) proved against mpmath.

The oracle writes cross_entropy and nll_loss from their definitions, row by row: lse as
top + log(sum exp(x_j - top)) in mpmath at 60+ digits, nlp = lse - x,
torch's label smoothing and weighted mean, probability targets, ignore_index, masked (-inf)
classes; gradients from softmax minus the target distribution. Every value is computed at two
precisions (``exact_twice``), rounded by test_reference's ``correctly_round`` and must equal
the certified reference, on every regime, reduction and format; a few facts by hand.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from mpmath import mp, mpf
from test_reference import assert_certified, exact_twice, round_value, to_format

from loss_reference import classification as cl
from loss_reference.engine import EvaluationError, Evaluated
from loss_reference.formats import FORMATS
from conformance.specs import REDUCTIONS

FORMAT_NAMES = tuple(FORMATS)
INF = math.inf


# --- the oracle ----------------------------------------------------------------------------------

def _rows(x, target):
    """(M, C) rows with the class axis last, targets as (M,) or (M, C), the 'none' shape."""
    x = np.asarray(x, np.float64)
    c = x.shape[0] if x.ndim == 1 else x.shape[1]
    t = np.asarray(target)
    xr = x.reshape(1, c) if x.ndim == 1 else np.moveaxis(x, 1, -1).reshape(-1, c)
    if t.dtype.kind == "f":
        tr = t.reshape(1, c) if x.ndim == 1 else np.moveaxis(t, 1, -1).reshape(-1, c)
    else:
        tr = t.reshape(-1)
    return xr, tr, (() if x.ndim == 1 else (x.shape[0],) + x.shape[2:])


def _term(coefficient, nlp):
    """coefficient * nlp, a zero coefficient contributing nothing (also beside +inf)."""
    return mpf(0) if coefficient == 0 else coefficient * nlp


def _row_parts(name, xr, tr, w, ignore, eps):
    """Per row (counted, nll part A_i, smoothing part B_i or None, nlp list or None)."""
    soft = tr.dtype.kind == "f"
    out = []
    for i, row in enumerate(xr):
        xs = [mpf(float(v)) for v in row]
        counted = soft or int(tr[i]) != ignore
        if not counted:
            out.append((False, mpf(0), mpf(0), None))
            continue
        t = None if soft else int(tr[i])
        if name == "nll_loss":
            out.append((True, -(mpf(float(w[t])) * xs[t]), None, None))
            continue
        finite = [v for v in xs if mp.isfinite(v)]
        if any(v == mp.inf for v in xs) or not finite:
            out.append((True, mp.nan, mp.nan, None))
            continue
        # lse - x_c = (top - x_c) + log1p(the others' exp(x_k - top)): both terms >= 0, so
        # the largest logit's keeps a tail below the working precision (x = [17, 261]:
        # log1p(e^-244), where lse - 261 was 0 at 60 digits)
        top = max(finite)
        others = list(finite)
        others.remove(top)  # one term of exactly 1, taken out
        tail = mp.log1p(mp.fsum(mp.exp(v - top) for v in others))
        nlp = [(top - v) + tail for v in xs]
        classes = len(xs)
        if soft:
            q = [mpf(float(w[c])) * ((1 - mpf(eps)) * mpf(float(tr[i][c])) + mpf(eps) / classes)
                 for c in range(classes)]
            out.append((True, mp.fsum(_term(q[c], nlp[c]) for c in range(classes)), None, nlp))
            continue
        a = _term(mpf(float(w[t])), nlp[t])
        b = mp.fsum(_term(mpf(float(w[c])), nlp[c]) for c in range(classes)) if eps else None
        out.append((True, a, b, nlp))
    return out


def _combine(a, b, eps, classes):
    return a if b is None else (1 - mpf(eps)) * a + mpf(eps) / classes * b


def _quotient_by_zero(v):
    return mp.nan if v == 0 else (mp.inf if v > 0 else -mp.inf)


def _scale_digits(x) -> int:
    """Digits the logits' magnitude takes from the working precision: lse - x_c of logits
    near 1e308 cancels 308 digits before the loss's own."""
    finite = np.abs(np.asarray(x, np.float64))
    finite = finite[np.isfinite(finite)]
    largest = float(finite.max()) if finite.size else 0.0
    return max(0, math.ceil(math.log10(largest))) if largest > 1 else 0


def loss_exact(name, x, target, w, ignore, eps, reduction, guard):
    """([values], shape): the loss at 60 + guard digits."""
    xr, tr, batch = _rows(x, target)
    classes = xr.shape[1]
    w = np.ones(classes) if w is None else np.asarray(w, np.float64)
    soft = tr.dtype.kind == "f"
    with mp.workdps(60 + guard + _scale_digits(x)):
        parts = _row_parts(name, xr, tr, w, ignore, eps)
        rows = [_combine(a, b, eps, classes) for _, a, b, _ in parts]
        if reduction == "none":
            return rows, batch
        if reduction == "sum":
            return [mp.fsum(rows)], ()
        divisor = (mpf(len(parts)) if soft else
                   mp.fsum(mpf(float(w[int(tr[i])])) for i, p in enumerate(parts) if p[0]))
        if divisor == 0:
            qa = _quotient_by_zero(mp.fsum(p[1] for p in parts))
            bs = [p[2] for p in parts if p[2] is not None]
            qb = _quotient_by_zero(mp.fsum(bs)) if bs and eps and not soft else None
            if not any(p[0] for p in parts):
                return [mp.nan], ()
            return [_combine(qa, qb, eps, classes)], ()
        return [mp.fsum(rows) / divisor], ()


def _soft_grads_exact(parts, gs, divisor, w, tr, eps, classes, weighted, x_shape):
    """Probability targets: {'target': ..., 'weight': ...} at the current precision, from
    d loss / d p_ic = a_i (1 - e) w_c nlp_ic and d loss / d w_c = sum_i a_i p'_ic nlp_ic, a
    zero coefficient times a masked class's +inf giving 0."""
    m = len(parts)
    d_p, columns = [], [[] for _ in range(classes)]
    for i, (_, _, _, nlp) in enumerate(parts):
        a = mpf(float(gs[i])) / divisor
        if nlp is None:  # no log-softmax: nan throughout
            d_p.append([mp.nan] * classes)
            for c in range(classes):
                columns[c].append(mp.nan)
            continue
        d_p.append([_term(a * (1 - mpf(eps)) * float(w[c]), nlp[c]) for c in range(classes)])
        for c in range(classes):
            q = (1 - mpf(eps)) * mpf(float(tr[i][c])) + mpf(eps) / classes
            columns[c].append(_term(a * q, nlp[c]))
    values = np.empty((m, classes), dtype=object)
    for i in range(m):
        values[i] = d_p[i]
    if len(x_shape) == 1:
        laid = values.reshape(x_shape)
    else:
        laid = np.moveaxis(values.reshape((x_shape[0],) + x_shape[2:] + (classes,)), -1, 1)
    out = {"target": (list(laid.reshape(-1)), x_shape)}
    if weighted:
        # mpmath: +inf + -inf is nan, as the reference's sum over rows
        out["weight"] = ([mp.fsum(col) if col else mpf(0) for col in columns], (classes,))
    return out


def _softmax(row) -> tuple:
    """(s, s - 1): a row's softmax as exp(x_c - top) over their sum, at the working
    precision, exact where it is a dyadic rational (equal logits: 1 / C), where exp(-nlp)
    missed an exact tie of the format by mpmath's last bit (totality seed 135: 0.75 g of a
    float32 g, one ulp away); and each s_c - 1 as minus the others' terms over the sum, which
    keeps what 1 - s_c cancelled (x = [17, 261]: e^-244)."""
    xs = [mpf(float(v)) for v in row]
    top = max(v for v in xs if mp.isfinite(v))
    terms = [mp.exp(v - top) if mp.isfinite(v) else mpf(0) for v in xs]
    total = mp.fsum(terms)
    below_one = [-mp.fsum(terms[:c] + terms[c + 1:]) / total for c in range(len(terms))]
    return [v / total for v in terms], below_one


def grad_exact(name, g, x, target, w, ignore, eps, reduction, guard):
    """{'input': ([values], shape)}: the gradient in the input layout; with probability
    targets also 'target' and (with a weight) 'weight'."""
    weighted = w is not None
    xr, tr, batch = _rows(x, target)
    m, classes = xr.shape
    w = np.ones(classes) if w is None else np.asarray(w, np.float64)
    soft = tr.dtype.kind == "f"
    gs = (np.asarray(g, np.float64).reshape(-1) if reduction == "none"
          else np.full(m, float(g)))
    with mp.workdps(60 + guard + _scale_digits(x)):
        parts = _row_parts(name, xr, tr, w, ignore, eps)
        divisor = mpf(1)
        if reduction == "mean":
            divisor = (mpf(m) if soft else
                       mp.fsum(mpf(float(w[int(tr[i])])) for i, p in enumerate(parts) if p[0]))
        grad = [[mpf(0)] * classes for _ in range(m)]
        for i, (counted, a_part, _, nlp) in enumerate(parts):
            if not counted:
                continue
            a = mpf(float(gs[i])) / divisor
            if name == "nll_loss":
                grad[i][int(tr[i])] = -a * float(w[int(tr[i])])
                continue
            if nlp is None:
                grad[i] = [mp.nan] * classes
                continue
            s, s_minus_one = _softmax(xr[i])
            if soft:
                q = [mpf(float(w[c])) * ((1 - mpf(eps)) * mpf(float(tr[i][c]))
                                         + mpf(eps) / classes) for c in range(classes)]
                # s_c Q - q_c = (s_c - 1) q_c + s_c (the other q): no 1 - s_c cancelled
                grad[i] = [a * (s_minus_one[c] * q[c] + s[c] * mp.fsum(q[:c] + q[c + 1:]))
                           for c in range(classes)]
                continue
            t = int(tr[i])
            wsum = mp.fsum(mpf(float(v)) for v in w)
            grad[i] = [a * ((1 - mpf(eps)) * float(w[t]) * (s_minus_one[c] if c == t else s[c])
                            + mpf(eps) / classes * (s[c] * wsum - float(w[c])))
                       for c in range(classes)]
        extra = (_soft_grads_exact(parts, gs, divisor, w, tr, eps, classes, weighted,
                                   np.asarray(x).shape) if soft else {})
    x = np.asarray(x)
    values = np.empty((m, classes), dtype=object)
    for i in range(m):
        values[i] = grad[i]
    if x.ndim == 1:
        laid = values.reshape(x.shape)
    else:
        laid = np.moveaxis(values.reshape((x.shape[0],) + x.shape[2:] + (classes,)), -1, 1)
    return {"input": (list(laid.reshape(-1)), x.shape), **extra}


def _assert_certified(evaluated, values, shape, fmt):
    """assert_certified, which measures estimates of finite values only; where the exact value
    is infinite, the rounded result and the estimate must be that infinity."""
    infinite = [isinstance(v, mp.mpf) and mp.isinf(v) for v in values]
    if not any(infinite):
        return assert_certified(evaluated, values, shape, fmt)
    expected = np.array([round_value(v, fmt)[0] for v in values]).reshape(shape)
    np.testing.assert_array_equal(evaluated.rounded, expected, strict=True)
    exact = np.asarray(evaluated.exact, np.float64).reshape(-1)
    assert all(exact[i] == float(v) for i, v in enumerate(values) if infinite[i])
    # the finite values' estimates, as assert_certified measures them
    finite = [i for i, v in enumerate(values) if mp.isfinite(v)]
    if finite:
        assert_certified(Evaluated(evaluated.rounded.reshape(-1)[finite],
                                   evaluated.exact.reshape(-1)[finite]),
                         [values[i] for i in finite], (len(finite),), fmt)


# --- the regimes ---------------------------------------------------------------------------------

NORMAL = [[1.25, -3.5, 4.75, -1.0625], [0.0, 0.8125, -2.0, 3.0], [2.5, 2.5, -0.75, 1.5]]


def regime(name, fmt):
    """(x, target, weight, ignore_index, label_smoothing), representable in fmt."""
    w, ignore, eps = None, -100, 0.0
    x, t = NORMAL, np.array([0, 3, 1])
    if name == "normal":
        pass
    elif name == "weighted":
        w = [0.25, 1.5, 3.0, 0.0]
    elif name == "signed-weights":
        w = [-1.0, 0.5, 2.0, 0.75]
    elif name == "ignore":
        t, ignore, w = np.array([0, 3, 1]), 3, [0.5, 2.0, 1.0, 1.5]
    elif name == "padding":
        t, w = np.array([-100, 2, -100]), [0.5, 2.0, 1.0, 1.5]
    elif name == "smoothing":
        t, w, eps, ignore = np.array([0, -1, 2]), [0.5, 2.0, 1.0, 1.5], 0.1, -1
    elif name == "smoothing-one":
        eps = 1.0
    elif name == "two-classes":
        x, t, eps = [[1.5, -0.5], [0.25, 3.0]], np.array([1, 1]), 0.5
    elif name == "saturated":  # gaps beyond every format's exp range; softmax underflows
        x, t = [[1e4, -1e4, 0.0], [88.7, 0.0, -750.0], [0.0, 30.0, 1.0]], np.array([0, 2, 1])
    elif name == "offset":  # shift invariance: a large common offset
        x = (np.array(NORMAL) + 1e4).tolist()
    elif name == "masked":
        x, t = [[1.0, -INF, 2.0], [-INF, 0.5, -INF]], np.array([0, 1])
    elif name == "masked-smoothing":
        x, t, w, eps = [[1.0, -INF, 2.0], [0.0, 3.0, 1.0]], np.array([0, 1]), [1.0, 0.0, 2.0], 0.2
    elif name == "probabilities":
        t = np.array([[0.25, 0.5, 0.25, 0.0], [0.0, 0.0, 1.0, 0.0], [0.125, 0.125, 0.5, 0.25]])
        w, eps = [0.5, 2.0, 1.0, 1.5], 0.2
    elif name == "probabilities-signed":  # zero and negative weights, unnormalised targets
        t = np.array([[0.5, 1.0, 0.0, 0.25], [0.0, 0.75, 0.5, 1.0], [1.0, 0.0, 0.0, 0.0]])
        w = [-1.0, 0.0, 2.0, 0.75]
    elif name == "probabilities-masked":  # +inf and -inf in one weight column: nan
        x = [[1.0, -INF, 2.0, 0.5], [-INF, 0.25, -INF, 3.0], [0.0, -INF, 1.5, -1.0]]
        t = np.array([[0.5, 0.0, 0.5, 0.0], [0.0, 0.5, 0.0, 0.5], [0.25, 0.0, 0.25, 0.5]])
        w, eps = [1.0, -0.5, 0.0, 2.0], 0.1
    elif name == "probabilities-masked-exact":  # p'_c = 0 at every masked class: finite
        x = [[1.0, -INF, 2.0, 0.5], [-INF, 0.25, -INF, 3.0], [0.0, -INF, 1.5, -1.0]]
        t = np.array([[0.5, 0.0, 0.5, 0.0], [0.0, 0.5, 0.0, 0.5], [0.25, 0.0, 0.25, 0.5]])
        w = [1.0, -0.5, 0.0, 2.0]
    elif name == "probabilities-smoothing-one":
        x = [[1.0, -INF, 2.0, 0.5], [0.0, 0.8125, -2.0, 3.0]]
        t = np.array([[0.5, 0.0, 0.5, 0.0], [0.0, 0.25, 0.25, 0.5]])
        w, eps = [1.0, 2.0, 0.5, 1.5], 1.0
    elif name == "probabilities-undefined":  # a +inf logit: nan target row, nan weight
        x = [[1.0, INF, 2.0, 0.5], [0.0, 0.8125, -2.0, 3.0]]
        t = np.array([[0.5, 0.0, 0.5, 0.0], [0.0, 0.25, 0.25, 0.5]])
        w = [1.0, 2.0, 0.5, 1.5]
    elif name == "probabilities-k-dim":
        x = np.array(NORMAL * 2).reshape(2, 3, 4)
        t = np.abs(np.array(NORMAL * 2).reshape(2, 3, 4)) / 8
        w, eps = [1.0, 0.5, -2.0], 0.05
    elif name == "probabilities-unbatched":
        x, t, w = NORMAL[1], np.array([0.25, 0.0, 0.75, 0.0]), [0.5, 2.0, 1.0, 1.5]
    elif name == "probabilities-empty":
        x, t, w = np.zeros((0, 4)), np.zeros((0, 4)), [0.5, 2.0, 1.0, 1.5]
    elif name == "k-dim":
        x = np.array(NORMAL * 2).reshape(2, 3, 4)
        t = np.array([[0, 2, 1, 1], [2, -100, 0, 1]])
        w = [1.0, 0.5, 2.0]
    elif name == "unbatched":
        x, t = NORMAL[0], np.array(2)
    elif name == "empty":
        x, t = np.zeros((0, 4)), np.zeros(0, np.int64)
    elif name == "all-ignored":
        t = np.array([-100, -100, -100])
    elif name == "zero-weight-sum":
        w = [1.0, -2.0, 0.0, 1.0]  # w_t = 1, 1, -2
    else:
        raise AssertionError(name)
    x = np.asarray(x, np.float64)
    finite = np.isfinite(x)
    x = np.where(finite, to_format(np.where(finite, x, 0.0), fmt), x)
    t = to_format(t, fmt) if t.dtype.kind == "f" else t.astype(np.int64)
    return x, t, None if w is None else to_format(w, fmt), ignore, eps


REGIMES = ("normal", "weighted", "signed-weights", "ignore", "padding", "smoothing",
           "smoothing-one", "two-classes", "saturated", "offset", "masked", "masked-smoothing",
           "probabilities", "k-dim", "unbatched", "empty", "all-ignored", "zero-weight-sum",
           "probabilities-signed", "probabilities-masked", "probabilities-masked-exact",
           "probabilities-smoothing-one", "probabilities-undefined", "probabilities-k-dim",
           "probabilities-unbatched", "probabilities-empty")
NLL_REGIMES = ("normal", "weighted", "signed-weights", "ignore", "padding", "saturated",
               "masked", "k-dim", "unbatched", "empty", "all-ignored", "zero-weight-sum")
GRID = [pytest.param(n, r, red, f, id=f"{n}-{r}-{red}-{f}")
        for n in cl.LOSSES for r, red, f in itertools.product(REGIMES, REDUCTIONS, FORMAT_NAMES)
        if n == "cross_entropy" or r in NLL_REGIMES]


def _upstream(shape, reduction, fmt):
    if reduction != "none":
        return to_format(-2.5, fmt)
    return to_format(np.resize([0.75, -2.5, 1.25, -0.375, 2.0, 0.5], shape), fmt)


@pytest.mark.parametrize("name, regime_name, reduction, fmt_name", GRID)
def test_loss(name, regime_name, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, t, w, ignore, eps = regime(regime_name, fmt)
    values, shape = exact_twice(
        lambda guard: loss_exact(name, x, t, w, ignore, eps, reduction, guard), fmt)
    result = cl.loss(name, x, t, w, ignore, eps, reduction, fmt)
    _assert_certified(result, values, shape, fmt)


@pytest.mark.parametrize("name, regime_name, reduction, fmt_name", GRID)
def test_loss_grad(name, regime_name, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, t, w, ignore, eps = regime(regime_name, fmt)
    shape = () if x.ndim == 1 else (x.shape[0],) + x.shape[2:]
    g = _upstream(shape, reduction, fmt)
    if regime_name == "zero-weight-sum" and reduction == "mean":
        with pytest.raises(EvaluationError):  # the gradient of A / 0 is undefined
            cl.loss_grad(name, g, x, t, w, ignore, eps, reduction, fmt)
        return
    expected = exact_twice(
        lambda guard: grad_exact(name, g, x, t, w, ignore, eps, reduction, guard), fmt)
    grads = cl.loss_grad(name, g, x, t, w, ignore, eps, reduction, fmt)
    assert set(grads) == set(expected)
    for argument in expected:
        _assert_certified(grads[argument], *expected[argument], fmt)


# --- facts by hand -------------------------------------------------------------------------------

F64 = FORMATS["float64"]


def test_a_gradient_at_an_exact_tie_rounds_to_even_and_the_oracle_sees_the_tie():
    """Totality seed 135: equal logits make the softmax 1/4 exactly, and 0.75 g of a float32 g
    (26 bits) lies exactly halfway between two float32 numbers; the reference rounds it to the
    even one, and the oracle, with the softmax as a ratio, computes the tie exactly."""
    fmt, g = FORMATS["float32"], np.array([2.1175076961517334])
    x, t = np.full((1, 4), 709.780029296875), np.array([0])
    expected = exact_twice(
        lambda guard: grad_exact("cross_entropy", g, x, t, None, -100, 0.0, "none", guard), fmt)
    values, shape = expected["input"]
    assert round_value(values[0], fmt)[1]  # a tie, computed exactly
    grads = cl.loss_grad("cross_entropy", g, x, t, None, -100, 0.0, "none", fmt)
    _assert_certified(grads["input"], values, shape, fmt)
    assert np.float32(grads["input"].rounded[0, 0]).view(np.int32) % 2 == 0


@pytest.mark.parametrize("target", [np.array([1]), np.array([[0.5, 0.5]])],
                         ids=["index", "probabilities"])
def test_a_saturated_rows_tail_is_kept_by_the_oracle_and_the_reference(target):
    """Logits [17, 261]: the larger class's softmax is 1 - e^-244 and its log-softmax -log1p(
    e^-244), 1.08e-106 from 1 and 0, which float64 holds. The oracle had computed lse - x_c and
    s_c - 1 at 60 digits, both 0 there (the underflow test of the totality file, seed 9); it
    now keeps each tail, equal to the closed forms, and the reference certifies the same."""
    x, tail = np.array([[17.0, 261.0]]), mp.log1p(mp.exp(-244))
    expected = exact_twice(lambda guard: grad_exact(
        "cross_entropy", np.array(1.0), x, target, None, -100, 0.0, "sum", guard), F64)
    grads = cl.loss_grad("cross_entropy", np.array(1.0), x, target, None, -100, 0.0, "sum", F64)
    values, _ = expected["input"]
    if target.ndim == 1:  # s_1 - 1 = -e^-244 / (1 + e^-244)
        assert mp.almosteq(values[1], -mp.exp(-244) / (1 + mp.exp(-244)), 1e-50)
    else:  # d loss / d p_1 = -log_softmax(x)_1
        assert mp.almosteq(expected["target"][0][1], tail, 1e-50)
    for argument in expected:
        _assert_certified(grads[argument], *expected[argument], F64)


def test_uniform_logits_give_log_c():
    for c in (2, 3, 5, 4096):
        value = cl.loss("cross_entropy", np.zeros((1, c)), np.array([0]), None, -100, 0.0,
                        "mean", F64).rounded
        assert value == float(mp.log(c))


def test_shift_invariance_is_exact():
    x = np.array([[1.25, -3.5, 4.75], [0.0, 0.8125, -2.0]])
    t = np.array([2, 0])
    base = cl.loss("cross_entropy", x, t, None, -100, 0.1, "none", F64).rounded
    for offset in (1e2, 1e4, -3e4):
        shifted = cl.loss("cross_entropy", x + offset, t, None, -100, 0.1, "none", F64).rounded
        np.testing.assert_array_equal(shifted, base)  # x + offset is exact for these values


def test_weighted_mean_follows_torch():
    """sum(w_t l_t) / sum(w_t) over counted rows; scaling the weight leaves it unchanged."""
    x = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    t = np.array([0, 1, -100])
    for w in ([1.0, 3.0], [2.0, 6.0]):
        value = cl.loss("nll_loss", x - np.array([[1.0, 2.0]]), t, np.array(w), -100, 0.0,
                        "mean", F64).rounded
        assert value == (1 * 1 + 3 * 2) / 4


def test_a_mean_over_zero_weights_with_an_infinite_logit_is_nan():
    """The weights that count sum to 0, so 'mean' divides by 0: its numerator holds a zero
    weight times an infinite logit (NaN, as torch computes it), whose quotient is NaN, not
    the infinity of the NaN's sign bit (quick soak seed 257, nll_loss float16: exact -inf,
    torch and numpy NaN); a numerator that is not NaN keeps its signed infinity."""
    x = np.array([[1.0, -INF, 2.0], [3.0, 1.0, 0.5]])
    t = np.array([1, 2])
    for w in ([1.0, 0.0, -0.0], [1.0, -0.0, 0.0]):
        for name in cl.LOSSES:
            assert np.isnan(cl.loss(name, x, t, np.array(w), -100, 0.0, "mean", F64).rounded)
    # weights 1 and -1 at the targets: -(1 * 1 - 1 * 3) / 0 = 2 / 0
    finite = np.array([[1.0, 5.0], [0.5, 3.0]])
    value = cl.loss("nll_loss", finite, np.array([0, 1]), np.array([1.0, -1.0]), -100, 0.0,
                    "mean", F64).rounded
    assert value == INF


def test_a_mean_over_zero_weights_takes_a_masked_class_with_zero_weight_as_its_sum_does():
    """cross_entropy's 'sum' takes a masked class (-inf logit) with a zero weight as 0 (its
    limit); so does a 'mean' whose counted weights sum to 0: weights 1 and -1 at the targets,
    A = 5.0067 - 3.1698 > 0 and B = (5.0067 - 0.0067 + 0) + (0.1698 - 3.1698 + 0) = 2 > 0,
    so (1 - e) A / 0 + (e / C) B / 0 = +inf (numpy's 0 * inf had made B NaN)."""
    x = np.array([[0.0, 5.0, -INF], [3.0, 0.0, 1.0]])
    t, w = np.array([0, 1]), np.array([1.0, -1.0, 0.0])
    total = cl.loss("cross_entropy", x, t, w, -100, 0.1, "sum", F64).rounded
    assert np.isfinite(total) and total > 0
    assert cl.loss("cross_entropy", x, t, w, -100, 0.1, "mean", F64).rounded == INF


def test_a_mean_over_zero_weights_takes_the_exact_numerators_sign():
    """The quotient's sign is that of the exact numerator, not of its float64 evaluation.
    cross_entropy: the second row is the first shifted by 3.25 (its classes swapped), so
    its nlp at the target is exactly the first's and A = 1 nlp - 1 nlp = 0: 0 / 0 is NaN,
    where float64's two log-sum-exps differ (+inf). nll_loss: a x1 and a x2 round to the same
    float64 for adjacent x1 < x2, so A = a (x2 - x1) > 0 evaluated 0 (NaN): +inf."""
    shifted = np.array([[0.0, 1.0], [4.25, 3.25]])
    t, w = np.array([0, 1]), np.array([1.0, -1.0])
    for smoothing in (0.0, 0.25):  # B = 1 (nlp0 + nlp1) - 1 (nlp1 + nlp0): 0 as well
        value = cl.loss("cross_entropy", shifted, t, w, -100, smoothing, "mean", F64).rounded
        assert np.isnan(value), smoothing
    a, x1 = 1.6369616873214543, 1.2697867137638703
    x2 = np.nextafter(x1, 2.0)
    assert a * x1 == a * x2
    log_probs = np.array([[-x1, 0.0], [0.0, -x2]])
    value = cl.loss("nll_loss", log_probs, t, np.array([a, -a]), -100, 0.0, "mean", F64).rounded
    assert value == -INF  # -(a (-x1)) - (-a (-x2)) = a (x1 - x2) < 0


def test_probability_mean_divides_by_rows():
    x = np.zeros((2, 2))
    p = np.array([[1.0, 0.0], [0.0, 1.0]])
    value = cl.loss("cross_entropy", x, p, np.array([2.0, 2.0]), -100, 0.0, "mean", F64).rounded
    assert value == float(2 * mp.log(2))  # index targets would give log 2


def test_ignored_rows_have_zero_gradient_and_empty_means():
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    grads = cl.loss_grad("cross_entropy", np.array([1.0, 1.0]), x, np.array([-100, 0]), None,
                         -100, 0.3, "none", F64)["input"].rounded
    assert grads[0].tolist() == [0.0, 0.0, 0.0]
    for name in cl.LOSSES:
        assert np.isnan(cl.loss(name, x, np.array([-100, -100]), None, -100, 0.0, "mean",
                                F64).rounded)
        assert cl.loss(name, x, np.array([-100, -100]), None, -100, 0.0, "sum", F64).rounded == 0


def test_infinite_logits():
    t = np.array([0])
    masked = np.array([[1.0, -INF, 2.0]])
    assert np.isfinite(cl.loss("cross_entropy", masked, t, None, -100, 0.0, "none", F64).rounded)
    assert cl.loss("cross_entropy", masked, t, None, -100, 0.1, "none", F64).rounded == INF
    zero_weight = np.array([1.0, 0.0, 1.0])
    assert np.isfinite(cl.loss("cross_entropy", masked, t, zero_weight, -100, 0.1, "none",
                               F64).rounded)
    assert np.isnan(cl.loss("cross_entropy", np.array([[1.0, INF, 0.0]]), t, None, -100, 0.0,
                            "none", F64).rounded)


def test_probability_target_and_weight_gradients_at_masked_classes():
    """A zero coefficient times a masked class's +inf gives 0 (zero upstream, zero weight,
    e = 1); otherwise the infinity of its sign."""
    x = np.array([[1.0, -INF, 2.0], [1.0, 0.0, 2.0]])
    p = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    w = np.array([1.0, 1.0, 1.0])
    grads = cl.loss_grad("cross_entropy", np.array([0.0, 1.0]), x, p, w, -100, 0.0, "none", F64)
    assert grads["target"].rounded[0].tolist() == [0.0, 0.0, 0.0]
    nlp = float(mp.log(1 + mp.e + mp.e ** 2))  # row 1, class 1: lse - 0
    assert grads["weight"].rounded[1] == float(mpf(0.5) * nlp)
    grads = cl.loss_grad("cross_entropy", np.array(1.0), x[:1], p[:1], np.array([1.0, -2.0, 0]),
                         -100, 0.0, "sum", F64)
    assert grads["target"].rounded[0, 1] == -INF and grads["weight"].rounded[1] == INF
    grads = cl.loss_grad("cross_entropy", np.array(1.0), x[:1], p[:1], w, -100, 1.0, "sum", F64)
    assert grads["target"].rounded.tolist() == [[0.0, 0.0, 0.0]]
    assert grads["weight"].rounded[1] == INF  # p'_1 = 1 / 3


def test_index_targets_differentiate_the_input_only():
    x = np.array([[1.0, 2.0, 3.0]])
    grads = cl.loss_grad("cross_entropy", np.array(1.0), x, np.array([0]), np.ones(3), -100,
                         0.1, "mean", F64)
    assert set(grads) == {"input"}
