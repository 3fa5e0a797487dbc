"""The compiled slicing (``split_kernel``, through ``split_product._split_compiled``) gives the
numpy form's slices, remainders, norms and lowest unit bit for bit (``_split_numpy``), on
operands of every kind: ordinary, spread over the whole exponent range, subnormal, with zero
rows and columns, transposed views, along either axis, with and without the remainders kept."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loss_reference import split_product as sp

pytest.importorskip("numba")

KINDS = ("normal", "wide", "subnormal", "huge", "zero rows", "float32")


def _operand(kind: str, shape, rng) -> np.ndarray:
    n, m = shape
    if kind == "normal":
        values = rng.normal(size=shape)
    elif kind == "wide":  # every binade float64 has, beside each other in a row
        values = np.exp2(rng.uniform(-1074, 1000, shape)) * rng.choice([-1.0, 1.0], shape)
    elif kind == "subnormal":
        values = rng.normal(size=shape) * 2.0 ** -1060
    elif kind == "huge":  # units above 2^1023 for beta below 30: ldexp's path
        values = rng.normal(size=shape) * 2.0 ** 1020
    elif kind == "zero rows":
        values = rng.normal(size=shape)
        values[rng.random(n) < 0.3] = 0.0
        values[:, rng.random(m) < 0.3] = 0.0
    else:  # a language model's operands: float32 values
        values = rng.normal(size=shape).astype(np.float32).astype(np.float64)
    values[rng.random(shape) < 0.05] = 0.0
    return values


def _assert_same_split(values, axis, beta, most, keep):
    rests_numpy, norms_numpy = ([values], []) if keep else (None, None)
    rests_compiled, norms_compiled = ([values], []) if keep else (None, None)
    expected = sp._split_numpy(values.copy(), axis, beta, most, rests_numpy, norms_numpy)
    got = sp._split_compiled(values.copy(), axis, beta, most, rests_compiled, norms_compiled)
    assert len(got[0]) == len(expected[0])
    for mine, theirs in zip(got[0], expected[0]):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[2] == expected[2]
    if keep:
        for mine, theirs in zip(rests_compiled, rests_numpy):
            np.testing.assert_array_equal(mine, theirs)
        for mine, theirs in zip(norms_compiled, norms_numpy):
            np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axis", (0, 1))
@pytest.mark.parametrize("transposed", (False, True))
def test_the_compiled_split_gives_the_numpy_forms_slices(kind, axis, transposed):
    rng = np.random.default_rng(len(kind) + 10 * axis + 100 * transposed)
    values = _operand(kind, (70, 90), rng)
    if transposed:  # an F-contiguous view, as a gradient's transpose
        values = np.ascontiguousarray(values.T).T
    for beta in (10, 20, sp.slice_bits(values.shape[axis])):
        for keep in (False, True):
            _assert_same_split(values, axis, beta, sp.MAX_SLICES, keep)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(KINDS), st.integers(1, 40), st.integers(1, 40), st.integers(0, 1),
       st.integers(3, 26), st.integers(1, sp.MAX_SLICES), st.booleans(), st.integers(0, 2**32))
def test_the_compiled_split_agrees_on_any_operand(kind, n, m, axis, beta, most, keep, seed):
    """Within ``slice_bits``' domain (a slice's squares sum exactly: at most 2^53)."""
    values = _operand(kind, (n, m), np.random.default_rng(seed))
    beta = min(beta, sp.slice_bits(values.shape[axis]))
    _assert_same_split(values, axis, beta, most, keep)


def test_large_operands_take_the_compiled_split(monkeypatch):
    """``_split`` dispatches to the compiled form from COMPILED_ELEMENTS on: the form the
    equality above vouches for is the one that runs."""
    calls = []
    real = sp._split_compiled
    monkeypatch.setattr(sp, "_split_compiled", lambda *a: calls.append(1) or real(*a))
    values = np.random.default_rng(0).normal(size=(64, sp.COMPILED_ELEMENTS // 64))
    sp._split(values, 1, 20)
    sp._split(values[:2, :2].copy(), 1, 20)
    assert calls == [1]
