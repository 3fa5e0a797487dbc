"""The property checks (conformance/properties.py) are sound and have power.

- Every transform is exact: on hundreds of drawn cases per property, the certified reference of
  the transformed case equals the original's bit for bit (rounded to the dtype), the two
  estimates of the exact value agree within the engine's promise (ESTIMATE_ULPS of an ulp
  each: a sum of permuted terms may round differently on its way), every argument holds
  numbers of the dtype, and an expanded view's rows stay equal.
- Every reduction identity holds for the spec's own reference: 'sum' and 'mean' (and kl_div's
  'batchmean') are sum_i none_i / d_i with the divisors the property uses.
- Buggy candidates (tests/mutants/) are flagged by the property named, through the real
  command; torch and the built-in numpy candidate pass every property with seed 1 (seed 0:
  tests/test_mutants.py).
"""

from __future__ import annotations

import math
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import run_conformance
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from conformance.cases import round_to
from conformance.properties import properties_of
from conformance.specs import SPECS, group_variants
from loss_reference.engine import ESTIMATE_ULPS, EvaluationError
from loss_reference.formats import DTYPES, format_of

HERE = Path(__file__).resolve().parent
TRANSFORMS = [(name, prop) for name, spec in SPECS.items() for prop in properties_of(spec)
              if prop.divisor is None]
IDENTITIES = [(name, prop) for name, spec in SPECS.items() for prop in properties_of(spec)
              if prop.divisor is not None]


def _group(spec, dtype):
    return next(g for g in group_variants(spec.variants) if g.dtype == dtype)


def _cases(spec, dtype, prop):
    members = [v for v in _group(spec, dtype).members if prop.reductions is None
               or v.option_dict().get("reduction") in prop.reductions]
    return st.one_of(*(spec.cases(v) for v in members))


def _same(x, y) -> bool:
    return np.shape(x) == np.shape(y) and bool(np.array_equal(x, y, equal_nan=True))


def _close_estimates(a, b, dtype) -> bool:
    """The two estimates of one exact value are within the engine's promise of it each."""
    x, y = np.asarray(a.exact, np.longdouble), np.asarray(b.exact, np.longdouble)
    if x.shape != y.shape:
        return False
    special = ~np.isfinite(x) | ~np.isfinite(y)
    if not np.array_equal(x[special], y[special], equal_nan=True):
        return False
    ulp = format_of(dtype).ulp(np.asarray(a.rounded, np.float64))
    with np.errstate(invalid="ignore"):
        gap = np.abs(x - y).astype(np.float64)
    return bool(np.all(gap[~special] <= 2 * ESTIMATE_ULPS * ulp[~special]))


def _in_dtype(case) -> bool:
    """Every floating argument holds numbers of the case's dtype (non-finite ones kept)."""
    for value in case.args.values():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            finite = np.isfinite(value)
            if not np.array_equal(round_to(np.where(finite, value, 0.0), case.dtype)[finite],
                                  value[finite]):
                return False
    return True


def _expandable(case) -> bool:
    """Arguments laid out as expanded views repeat their first row (what the view shows)."""
    for name, layout in case.layouts.items():
        value = case.args.get(name)
        if layout == "expanded" and isinstance(value, np.ndarray) and value.ndim and len(value):
            if not _same(value, np.broadcast_to(value[:1], value.shape)):
                return False
    return True


TRANSFORM_EXAMPLES = 75


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, prop", TRANSFORMS, ids=[f"{n}-{p.name}" for n, p in TRANSFORMS])
def test_transform_preserves_the_exact_value(name, prop, dtype):
    """TRANSFORM_EXAMPLES cases per dtype: reference(B) == reference(A), exactly (for a batch
    split: B's equals A's at B's rows)."""
    spec = SPECS[name]
    counts = {"applied": 0, "changed": 0}

    @seed(0)
    @settings(max_examples=TRANSFORM_EXAMPLES, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=_cases(spec, dtype, prop), data=st.data())
    def exact(case, data):
        pair = prop.transform(case, data.draw)
        if pair is None:
            return
        counts["applied"] += 1
        counts["changed"] += any(not _same(pair.a.args[k], pair.b.args[k]) for k in pair.a.args
                                 if isinstance(pair.a.args[k], np.ndarray))
        assert _in_dtype(pair.a) and _in_dtype(pair.b), "an argument is not in the dtype"
        assert _expandable(pair.a) and _expandable(pair.b), "an expanded view lost its rows"
        try:
            a, b = spec.reference(pair.a), spec.reference(pair.b)
        except EvaluationError:
            return
        if pair.rows is not None:  # B is a part of A's batch: those rows of A
            a = type(a)(a.rounded[pair.rows], a.exact[pair.rows])
        assert _same(a.rounded, b.rounded), (a.rounded, b.rounded)
        assert _close_estimates(a, b, dtype), (a.exact, b.exact)

    exact()
    # the transform applies to the share of cases it declares (a batch split only to the
    # batched ones of 2 rows or more: 34 of 75 linear_cross_entropy cases, 57 of cross_entropy's)
    assert counts["applied"] >= prop.applies_to * TRANSFORM_EXAMPLES, counts
    assert counts["changed"] >= counts["applied"] // 2, counts  # and changes them


def test_shift_leaves_no_logit_beyond_the_dtype_on_its_grid():
    """Soak quick seed 63: float16 logits of -65504 beside -314.5, snapped to the grid of 64
    the shift needs, were -65536, beyond float16: the case's own logit became -inf in the
    dtype (every candidate's loss inf) while its reference took -65536 (16908). The shift
    now applies only where the snapped logits are numbers of the dtype too."""
    from conformance.cases import Case

    spec = SPECS["cross_entropy"]
    shift = next(p for p in properties_of(spec) if p.name == "shift")
    x = np.array([[-314.5, -65504.0], [1.0, 2.0]])
    case = Case("float16", {"input": x, "target": np.array([[0.5, 0.5], [0.25, 0.75]]),
                            "weight": None}, {"reduction": "none"}, {}, ())
    answers = iter([False, [16.0], [1.0]])  # one offset for every row: +16
    pair = shift.transform(case, lambda strategy, label=None: next(answers))
    assert pair is None or (_in_dtype(pair.a) and _in_dtype(pair.b))


def test_an_exact_sum_beyond_float64_reads_as_an_infinity():
    """Soak quick seed 95: poisson_nll_loss's 'none' values summed exactly beyond float64's
    range (10^400) crashed the sum-of-none property's verdict (OverflowError) for torch and
    numpy alike; the sum is +-inf as a float."""
    from conformance.properties import _float

    assert _float(Fraction(10) ** 400) == math.inf
    assert _float(-(Fraction(10) ** 400)) == -math.inf
    assert _float(Fraction(3, 4)) == 0.75


def _ieee(values: np.ndarray, divisor) -> float:
    """sum_i values_i / d_i in long double with IEEE's specials (0 / 0 = nan, x / 0 = inf)."""
    with np.errstate(all="ignore"):
        d = np.asarray(divisor if np.ndim(divisor) else float(Fraction(divisor)), np.longdouble)
        if np.ndim(divisor):
            return float(np.sum(values / d))
        return float(np.sum(values) / d)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, prop", IDENTITIES, ids=[f"{n}-{p.name}" for n, p in IDENTITIES])
def test_reduction_identity_holds_for_the_reference(name, prop, dtype):
    """15 cases per dtype: reference('sum' / 'mean' / 'batchmean') is sum_i none_i / d_i."""
    spec = SPECS[name]

    @seed(0)
    @settings(max_examples=15, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=_cases(spec, dtype, prop), data=st.data())
    def identity(case, data):
        pair = prop.transform(case, data.draw)
        try:
            a, b = spec.reference(pair.a), spec.reference(pair.b)
        except EvaluationError:
            return
        terms = a.exact.astype(np.longdouble)
        divisor = prop.divisor(pair.a, terms.shape)
        reduced = float(b.exact)
        expected = _ieee(terms, divisor)
        if not np.all(np.isfinite(terms)) or not np.isfinite(expected):
            assert _same(np.array(reduced), np.array(expected)), (reduced, expected)
            return
        scale = _ieee(np.abs(terms), np.abs(np.asarray(divisor, np.float64)))
        # Each .exact is an estimate within ESTIMATE_ULPS of an ulp of the dtype; the sum and
        # the division here add float64 rounding.
        fmt = format_of(dtype)
        ulps = _ieee(fmt.ulp(np.asarray(a.rounded, np.float64)).astype(np.longdouble),
                     np.abs(np.asarray(divisor, np.float64)))
        slack = (ESTIMATE_ULPS * (ulps + float(fmt.ulp(np.array(reduced)))) + 2.0 ** -52 * scale
                 + (terms.size + 1) * 2.0 ** -1074)
        assert abs(reduced - expected) <= slack, (reduced, expected, slack)

    identity()


# mutant file -> (the -k selection, the property that must flag it)
MUTANTS = {
    "bcel_naive_log_sigmoid.py": ("test_property and mirror", "mirror"),
    "pw_soft_margin_sum_is_mean.py": ("test_property and sum-of-none", "sum-of-none"),
    "ce_smoothing_skips_class_zero.py": ("test_property and permutation and not float16",
                                         "permutation"),
    "ce_logsumexp_no_max.py": ("test_property and shift and not float16", "shift"),
}


QUICK = ("--profile=quick", "--no-report")


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_property_flags_mutant(mutant, tmp_path):
    """The property alone flags the mutant (its verdict, not a crash of the suite)."""
    shutil.copy(HERE / "mutants" / mutant, tmp_path / "candidate.py")
    select, prop = MUTANTS[mutant]
    run = run_conformance(tmp_path, "conformance", "--impl=candidate.py", *QUICK, "-k", select)
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, f"not flagged:\n{run}"
    assert "does not conform" in run.stdout and f"{prop} (" in run.stdout, run


def test_correct_candidates_have_every_property_with_another_seed(tmp_path):
    """Seed 1 (tests/test_mutants.py runs every check of torch and numpy with seed 0)."""
    run = run_conformance(tmp_path, "conformance", "--impl=torch", "--impl=numpy", "--seed=1",
                          *QUICK, "-k", "test_property")
    assert run.returncode == pytest.ExitCode.OK, run


def test_a_subnormal_divisor_bounds_nothing_and_crashes_nothing(tmp_path):
    """Quick seed 8 draws a float64 weight of 2.2e-311: the 'none' output's allowance over it
    overflows to inf, and the mean-of-none identity then bounds nothing (the value check still
    judges the 'mean' against the reference); it crashed converting inf to a Fraction."""
    run = run_conformance(tmp_path, "conformance", "--impl=torch", "--seed=8", *QUICK, "-k",
                          "test_property and mean-of-none and float64 and (mse_loss or l1_loss)")
    assert run.returncode == pytest.ExitCode.OK, run
