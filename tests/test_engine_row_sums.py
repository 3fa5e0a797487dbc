"""``engine.evaluate_row_sums`` with ``selectable``: a later tier recomputes only the rows of
the total that an earlier one left uncertified, and the results are the same certified
numbers as without the selection (the exact sums, rounded once); with ``known`` results (a
loss's own tier), ``evaluate`` and ``evaluate_row_sums`` compute only the rest."""

from fractions import Fraction

import numpy as np
import pytest

from loss_reference import engine
from loss_reference.formats import FORMATS, round_dyadic


def _column_sums(B, values, only=None):
    """Sums over the rows of ``values`` (rows, C), as a (C, 1) total; ``only``: those rows."""
    if only is not None:
        values = values[:, only]
    return B.reshape(B.sum(values, axis=0), (values.shape[1], 1))


def _cancelling_columns(rng, rows=64, columns=40, hard=(3, 17, 29)):
    """Columns of small random numbers; the ``hard`` ones sum 1e8 and -1e8 beside them, so
    that float64 balls (and pairwise long double ones) cannot certify their float32 sum."""
    values = rng.standard_normal((rows, columns)) * 2.0 ** -30
    for c in hard:
        values[0, c], values[-1, c] = 1e8, -1e8  # far apart in the pairwise tree
    return values


def _exact_float32(values: np.ndarray) -> list:
    sums = [sum((Fraction(float(v)) for v in column), Fraction(0)) for column in values.T]
    return [round_dyadic(s.numerator, -(s.denominator.bit_length() - 1), FORMATS["float32"])[0]
            for s in sums]


@pytest.mark.parametrize("seed", [0, 1])
def test_later_tiers_recompute_only_the_uncertified_rows(seed, monkeypatch):
    values = _cancelling_columns(np.random.default_rng(seed))
    asked = []

    def recording(B, values, only=None):
        asked.append((B.name, None if only is None else only.tolist()))
        return _column_sums(B, values, only)

    monkeypatch.setattr(engine, "_threads", lambda: 1)  # one chunk at a time, in order
    fmt = FORMATS["float32"]
    selected = engine.evaluate_row_sums(recording, [values], fmt, selectable=True,
                                        chunk_elements=1 << 20)
    whole = engine.evaluate_row_sums(lambda B, v: _column_sums(B, v), [values], fmt,
                                     chunk_elements=1 << 20)
    assert selected.rounded[:, 0].tolist() == _exact_float32(values)
    assert whole.rounded.tolist() == selected.rounded.tolist()
    # the float64 tier computes every column; the next ones only the cancelling columns
    assert asked[0] == ("float64", None)
    assert all(only == [3, 17, 29] for _, only in asked[1:]) and len(asked) > 1


def test_a_selectable_sum_refuses_a_finish():
    with pytest.raises(ValueError, match="finish"):
        engine.evaluate_row_sums(_column_sums, [np.ones((2, 2))], FORMATS["float32"],
                                 finish=lambda B, total: total, selectable=True)


def test_arb_recomputes_only_the_rows_a_hair_from_a_tie(monkeypatch):
    """Column 1 sums to 1 + 2^-24 + exp(-3000): a hair above the float32 tie between 1 and
    1 + 2^-23, which only arb at thousands of bits resolves (upwards); column 0 is plain.
    arb is asked for column 1 alone."""
    asked = []

    def sums(B, values, tails, only=None):
        asked.append((B.name, None if only is None else only.tolist()))
        total = B.sum(values, axis=0) + B.exp(tails)
        columns = np.arange(values.shape[1]) if only is None else only
        return B.reshape(total[columns], (len(columns), 1))

    values = np.array([[0.5, 1.0], [0.25, 2.0 ** -24]])
    tails = np.array([-np.inf, -3000.0])  # exp(-inf) = 0 exactly
    monkeypatch.setattr(engine, "_threads", lambda: 1)
    result = engine.evaluate_row_sums(sums, [values], FORMATS["float32"], shared=[tails],
                                      selectable=True)
    assert result.rounded[:, 0].tolist() == [0.75, 1 + 2.0 ** -23]
    arb_asks = [only for name, only in asked if name.startswith("arb")]
    assert arb_asks and all(only == [1] for only in arb_asks)


def test_known_results_leave_the_tiers_only_the_rest(monkeypatch):
    """``engine.Known``: a loss's own tier certified some rows of the total; the tiers compute
    only the others (every tier, the first included), keep the known ones as they are, and
    return the same certified sums."""
    values = _cancelling_columns(np.random.default_rng(2))
    fmt = FORMATS["float32"]
    truth = engine.evaluate_row_sums(lambda B, v: _column_sums(B, v), [values], fmt)
    ok = np.ones((values.shape[1], 1), dtype=bool)
    ok[[5, 17]] = False
    rounded = np.where(ok, truth.rounded, np.nan)  # what the tiers must fill in
    asked = []

    def recording(B, values, only=None):
        asked.append(None if only is None else only.tolist())
        return _column_sums(B, values, only)

    monkeypatch.setattr(engine, "_threads", lambda: 1)
    known = engine.Known(rounded, truth.exact, ok)
    completed = engine.evaluate_row_sums(recording, [values], fmt, selectable=True,
                                         known=known, chunk_elements=1 << 20)
    assert completed.rounded.tolist() == truth.rounded.tolist()
    assert asked and all(only in ([5, 17], [17]) for only in asked)


def test_known_rows_are_not_evaluated_again():
    """``evaluate`` by rows with ``known``: only the rows not known reach the function."""
    values = np.random.default_rng(3).standard_normal((10, 4))
    fmt = FORMATS["bfloat16"]
    seen = []

    def row_sums(B, rows):
        seen.append(len(rows.mid))
        return B.sum(rows, axis=-1)

    truth = engine.evaluate(row_sums, [values], fmt, independent="rows")
    ok = np.arange(10) % 3 == 0
    known = engine.Known(np.where(ok, truth.rounded, np.nan), truth.exact, ok)
    seen.clear()
    completed = engine.evaluate(row_sums, [values], fmt, independent="rows", known=known)
    assert completed.rounded.tolist() == truth.rounded.tolist()
    assert sum(seen) == int((~ok).sum())


@pytest.mark.parametrize("count", [1, 2, 5, 16])
def test_streamed_sums_are_balls_pairwise_sums_bit_for_bit(count, monkeypatch):
    """``streamed_sum`` adds float64 balls in place, into partial sums it made and no longer
    needs: the same bits as Ball's own additions in the same pairwise order (without numba's
    kernels), whatever the count of contributions, with an exact contribution (Ball's exact
    rules) among them; and no contribution is written."""
    from loss_reference import compiled_kernels

    rng = np.random.default_rng(count)
    parts = [engine.Ball(rng.standard_normal((30, 7)) * 10.0 ** rng.integers(-5, 5),
                         rng.random((30, 7)) * 1e-12) for _ in range(count)]
    for part in parts:  # a row of zeros: its radius is the additions' floor alone
        part.mid[0], part.rad[0] = 0.0, 0.0
    if count > 2:
        parts[2] = engine.Ball.exact(rng.standard_normal((30, 7)), engine.FLOAT64_BALLS.precision)
    copies = [(p.mid.copy(), np.array(p.rad)) for p in parts]
    got = engine.streamed_sum(lambda i: parts[i], list(range(count)))
    for part, (mid, rad) in zip(parts, copies):
        assert np.array_equal(part.mid, mid) and np.array_equal(part.rad, rad)
    monkeypatch.setattr(compiled_kernels, "kernels", lambda: None)
    want = engine.streamed_sum(lambda i: parts[i], list(range(count)))
    assert np.array_equal(got.mid, want.mid) and np.array_equal(got.rad, want.rad)


def test_rows_evaluated_by_chunks_are_each_rows_own_result(monkeypatch):
    """``evaluate`` by rows over many chunks on the reference's threads (each chunk's results
    written into one pair of arrays as it comes): every row's result is the one its row gives
    alone, trailing shape kept, the estimate in long double."""
    rng = np.random.default_rng(5)
    values = rng.standard_normal((37, 3, 4)) * 10.0 ** rng.integers(-3, 4, (37, 3, 4))
    fmt = FORMATS["float32"]

    def row_sums(B, rows):
        return B.sum(rows, axis=-1)

    monkeypatch.setattr(engine, "CHUNK_ELEMENTS", 30)  # two rows a chunk
    whole = engine.evaluate(row_sums, [values], fmt, independent="rows")
    assert whole.rounded.shape == (37, 3) and whole.exact.dtype == np.longdouble
    for i in (0, 5, 36):
        alone = engine.evaluate(row_sums, [values[i:i + 1]], fmt, independent="rows")
        assert whole.rounded[i].tolist() == alone.rounded[0].tolist()
        assert whole.exact[i].tolist() == alone.exact[0].tolist()
