"""Products of exact matrices through float64 BLAS, error-free: Ozaki's splitting.

The logits of a linear layer, x W^T, are sums of K products of the inputs. One float64 GEMM
errs by up to gamma(K) sum |x_k w_k| (for K = 128, about 1e-14 of the operands' norms), and a
long double product has no BLAS at all. Instead each operand is split into slices whose
entries are small integers (at most 2^beta) times a power of two shared by the entries of a row
of ``a`` or a column of ``b``: a product of two slices is then a matrix of integer multiples of
one unit, each at most K 2^(2 beta) <= 2^53 of them, and BLAS computes it exactly whatever the
order of its sums (Ozaki, Ogita, Oishi and Rump, "Error-free transformations of matrix
multiplication by using fast routines of matrix multiplication and its applications", Numerical
Algorithms 59, 2012). The inputs of a language model's layer (float32, bfloat16, float16, and
their exponents within a few binades of each row's largest) fit in two slices of 20-26 bits, so
their logits come out exact as a short sum of exact float64 products.

Slicing stops when nothing is left, or after MAX_SLICES slices: what is left then (the bits of
an entry more than MAX_SLICES beta binades below its row's largest, as in a row holding 1e30
beside numbers near 1) is bounded, not dropped: ``split_product`` returns it as an elementwise
bound.

Where every slice of full float64 operands would take 9-20 exact products, ``exact_levels``
keeps exact only the leading ones (A_i B_j, i + j < s) and computes the rest as s + 1 rounded
BLAS products, one part whose rounding the bound covers: 2^-(53 + s beta) or so of the
operands' norms.

Where a rounded product will do, but one GEMM's gamma(K) over a vocabulary of K classes is too
loose (2^-37 at 50,257), ``blocked_product`` computes it by blocks of the inner dimension and
bounds it by gamma(block) + gamma(blocks) instead (2^-43.7).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import lru_cache

import numpy as np

MAX_SLICES = 8
# An integer of up to 53 bits times 2^e is exact for e >= -1074, so a slice's unit and the
# product of two slices' units must stay there; entries far from overflow. Beyond these the
# caller falls back to one product.
_LOWEST_UNIT_EXPONENT = -1074
_HIGHEST_EXPONENT = 450
_U = 2.0 ** -53
_TINY = 2.0 ** -1022
_SUBNORMAL = 2.0 ** -1074


def slice_bits(inner: int) -> int:
    """The bits per slice for sums of ``inner`` products: K 2^(2 beta) <= 2^53."""
    return (53 - max(inner - 1, 0).bit_length()) // 2


def _split(values: np.ndarray, axis: int, beta: int, most: int = MAX_SLICES, rests=None,
           slice_norms=None):
    """(slices, remainder, lowest unit exponent) with values == sum(slices) + remainder
    exactly: at most ``most`` slices, each an integer of at most 2^beta in magnitude times a
    power of two 2^e shared along ``axis``, e >= -1074 (where integer times 2^e is exact,
    subnormal or not). ``rests``, a list, receives the remainder after each slice;
    ``slice_norms``, each slice's Euclidean norms along ``axis`` (from its integers, whose sum
    of squares is exact: at most 2^53), each within an ulp (a subnormal one up by a unit)."""
    if _compiled_split() is not None and values.ndim == 2 and values.size >= COMPILED_ELEMENTS \
            and (values.flags.c_contiguous or values.flags.f_contiguous):
        return _split_compiled(values, axis, beta, most, rests, slice_norms)
    return _split_numpy(values, axis, beta, most, rests, slice_norms)


def _slice_unit(top: np.ndarray, beta: int):
    """The next slice's unit exponents, from each row's or column's largest |rest| ``top``: 2^e
    with top < 2^(e + beta) (0 where nothing is left); None where nothing is left at all, or
    where a unit would fall below 2^-1074 (what is left then stays in the remainder, bounded
    by the caller)."""
    if not top.any():
        return None
    _, exponent = np.frexp(top)  # top < 2^exponent
    unit = np.where(top > 0, exponent - beta, 0)
    return None if unit.min() < _LOWEST_UNIT_EXPONENT else unit


def _split_numpy(values: np.ndarray, axis: int, beta: int, most: int = MAX_SLICES, rests=None,
                 slice_norms=None):
    """``_split`` in numpy passes (where numba does not import, and for small operands)."""
    slices, rest, lowest = [], values, 0
    for _ in range(most):
        # max |rest| without an array of |rest| (for a language model's weight, 100s of MB)
        top = np.maximum(np.max(rest, axis=axis, keepdims=True),
                         -np.min(rest, axis=axis, keepdims=True))
        unit = _slice_unit(top, beta)
        if unit is None:
            break
        # rest / 2^unit < 2^beta; rounding to an integer and scaling back are exact, and so is
        # rest - slice (at most half a unit, in the bits of rest below the unit)
        part = _times_power_of_two(rest, -unit)
        np.rint(part, out=part)
        if slice_norms is not None:
            squares = np.einsum("ij,ij->i" if axis == 1 else "ij,ij->j", part, part)
            slice_norms.append(_up_among_subnormals(
                np.sqrt(squares) * np.ldexp(1.0, unit.reshape(-1))))
        part = _times_power_of_two(part, unit, out=part)
        slices.append(part)
        if rest is values or rests is not None:
            rest = rest - part
        else:
            np.subtract(rest, part, out=rest)
        if rests is not None:
            rests.append(rest)
        lowest = min(lowest, int(unit.min()))
    return slices, rest, lowest


COMPILED_ELEMENTS = 1 << 12  # from this size on, ``_split`` takes the compiled pass


@lru_cache(maxsize=None)
def _compiled_split():
    """``split_kernel``, or None where numba does not import."""
    try:
        from . import split_kernel
    except ImportError:
        return None
    return split_kernel


def _split_compiled(values: np.ndarray, axis: int, beta: int, most: int, rests, slice_norms):
    """``_split`` by ``split_kernel``: one compiled pass a slice, the same slices bit for bit.
    An F-contiguous operand (a transposed view) is split as its C-contiguous transpose along
    the other axis."""
    kernel = _compiled_split()
    flipped = not values.flags.c_contiguous
    along_rows = (axis in (1, -1)) != flipped

    def laid_out(array):  # the C-contiguous view the kernel takes
        return array.T if flipped else array

    top = np.empty(laid_out(values).shape[0 if along_rows else 1])
    kernel.largest_magnitudes(laid_out(values), along_rows, top)
    slices, rest, lowest = [], values, 0
    for _ in range(most):
        unit = _slice_unit(top, beta)
        if unit is None:
            break
        part = np.empty_like(values)
        new_rest = np.empty_like(values) if rest is values or rests is not None else rest
        squares, top = np.empty(len(unit)), np.empty(len(unit))
        kernel.split_off(laid_out(rest), unit, along_rows, laid_out(part), laid_out(new_rest),
                         squares, top)
        if slice_norms is not None:
            slice_norms.append(_up_among_subnormals(np.sqrt(squares) * np.ldexp(1.0, unit)))
        slices.append(part)
        rest = new_rest
        if rests is not None:
            rests.append(rest)
        lowest = min(lowest, int(unit.min()))
    return slices, rest, lowest


def _times_power_of_two(values: np.ndarray, exponents: np.ndarray, out=None) -> np.ndarray:
    """values * 2^exponents (into ``out`` where given), exactly where the result is
    representable: a product by the power of two (a third of ldexp's time on large arrays)
    where every 2^e is a normal number, else ldexp."""
    if exponents.size and -1022 <= exponents.min() and exponents.max() <= 1023:
        return np.multiply(values, np.ldexp(1.0, exponents), out=out)
    return np.ldexp(values, exponents, out=out)


# ``norms``' one pass: below SQUARES_BELOW no square, nor a sum of up to SQUARES_TERMS of them,
# overflows; a sum of squares of at least SQUARES_FLOOR lost at most n 2^-1075 to underflow,
# far below one rounding of it (the scaled form takes the rows below)
SQUARES_BELOW, SQUARES_TERMS, SQUARES_FLOOR = 2.0 ** 500, 1 << 20, 2.0 ** -900


def norms(values: np.ndarray, axis: int) -> np.ndarray:
    """Euclidean norms along ``axis`` of a 2-D array, to within the relative rounding of a
    few operations (and a subnormal unit above, where a norm is subnormal): the sums of
    squares in one pass (``np.einsum``: no temporaries) where no square can overflow, and, for
    the rows whose sum is so small that underflow could matter (all-zero rows among them) or
    where a square could overflow, scaled by the largest entry (``_scaled_norms``). One pass
    where the scaled form took five (a language model's weight: 0.7 ms for 4096 x 64)."""
    if values.ndim != 2 or not values.size or values.shape[axis] > SQUARES_TERMS:
        return _scaled_norms(values, axis)
    largest = max(np.max(values), -np.min(values))
    if not largest < SQUARES_BELOW:  # NaN included
        return _scaled_norms(values, axis)
    along_rows = axis in (1, -1)
    sums = np.einsum("ij,ij->i" if along_rows else "ij,ij->j", values, values)
    result = np.sqrt(sums)
    small = sums < SQUARES_FLOOR
    if small.any():
        rows = values[small] if along_rows else values[:, small]
        result[small] = _scaled_norms(rows, axis)
    return result


def _scaled_norms(values: np.ndarray, axis: int) -> np.ndarray:
    """Euclidean norms along ``axis``, scaled by the largest entry so that no square overflows
    or underflows (to within the relative rounding of a few operations)."""
    scale = np.max(np.abs(values), axis=axis, keepdims=True, initial=0.0)
    safe = np.where(scale > 0, scale, 1)
    with np.errstate(over="ignore"):  # a norm beyond float64's range: inf
        return _up_among_subnormals(np.squeeze(
            np.sqrt(np.sum((values / safe) ** 2, axis=axis, keepdims=True)) * scale, axis=axis))


def _up_among_subnormals(values: np.ndarray) -> np.ndarray:
    """Norms made by a last product that may round among the subnormals, where its error is
    up to half a subnormal unit absolutely, not relatively: plus one unit there (exact), so
    that they bound the exact norms within the relative rounding of the few operations before.
    A norm of 19 entries of 5e-324 rounded from 4.36 units to 4: times a norm of 3.5e17, the
    bound on a product fell short of its exact value by 1e-307."""
    return np.where((values > 0) & (values < _TINY), values + _SUBNORMAL, values)


def gamma(n: int) -> float:
    """The relative error bound of a float64 sum of n products, in any order: n u / (1 - n u)
    (Higham, Accuracy and Stability of Numerical Algorithms, 3.1)."""
    return n * _U / (1 - n * _U)


BLOCKED_ELEMENTS = 1 << 22  # ``blocked_product``'s partial sums at a time (32 MB)
# ``blocked_product``'s fewest terms a block: smaller blocks, more partial sums to add, took up
# to twice one product's time (256 x 50,257 x 256); at 512, 1.05-1.25 times
BLOCK_TERMS = 512


def _block_terms(inner: int, block: int) -> int:
    return block or max(int(np.ceil(np.sqrt(inner))), BLOCK_TERMS)


def blocked_gamma(inner: int, block: int = 0) -> float:
    """``blocked_product``'s gamma for an inner dimension ``inner`` (and ``block``)."""
    block = _block_terms(inner, block)
    blocks = inner // block
    if blocks < 2:
        return gamma(inner)
    terms = blocks + (blocks * block < inner)
    return (gamma(block) + gamma(terms - 1) * (1 + gamma(block))) * (1 + 4 * _U)


def blocked_product(a: np.ndarray, b: np.ndarray, block: int = 0):
    """(a @ b, gamma): one float64 product of 2-D arrays over an inner dimension K, computed
    as BLAS products of blocks of ``block`` terms (by default max(BLOCK_TERMS, sqrt(K))), in
    batched calls over a strided view of a, a few rows at a time, whose partial sums numpy
    then adds, so that |computed - exact| <= gamma (|a| @ |b|) + (K + 1) 2^-1074, gamma
    about (block + blocks) u where one product's is K u (``blocked_gamma``): within a block
    gamma(block) of its terms' magnitudes, and the partial sums' addition gamma(blocks) of
    theirs (any order of a sum of n terms errs by at most gamma(n - 1) of their magnitudes:
    Higham, Accuracy and Stability of Numerical Algorithms, 3.1 and 4.2). At 4096 terms
    2^-44 where one product's is 2^-41; at 50,257, 2^-43.7 where it is 2^-37."""
    (n, inner), m = a.shape, b.shape[1]
    block = _block_terms(inner, block)
    blocks, whole = inner // block, inner // block * block
    if blocks < 2:
        return a @ b, blocked_gamma(inner, block)
    b_blocks = np.ascontiguousarray(b[:whole]).reshape(blocks, block, m)
    product = np.empty((n, m))
    step = max(1, BLOCKED_ELEMENTS // (blocks * m))
    row_stride, column_stride = a.strides
    for start in range(0, n, step):
        rows = a[start:start + step]
        stacked = np.lib.stride_tricks.as_strided(  # (blocks, rows, block), a view
            rows, (blocks, len(rows), block), (block * column_stride, row_stride, column_stride),
            writeable=False)
        np.sum(np.matmul(stacked, b_blocks), axis=0, out=product[start:start + step])
    if whole < inner:  # the last, shorter block
        product += a[:, whole:] @ b[whole:]
    return product, blocked_gamma(inner, block)


def split_product(a: np.ndarray, b: np.ndarray, reuse: bool = True,
                  exact_levels: int | None = None, row_bound: bool = False):
    """``a @ b`` for 2-D float64 matrices of exact numbers, as (parts, bound): the exact product
    is sum(parts) + E with |E| <= bound elementwise, each part an exact float64 product of two
    slices (largest first). None where the splitting does not apply (non-finite entries, or
    exponents beyond +-450 or so); the caller then computes one product with its error bound.
    ``reuse``: the right operand may be a layer's weight split once (``reusing_splits``);
    False for an operand made afresh per call, which would only evict it.

    ``exact_levels`` s: only the products of slices A_i B_j with i + j < s are exact; the rest
    of the product comes as s + 1 rounded BLAS products, each of a slice (or of a's remainder)
    by what the other operand's slices leave, whose rounding the bound covers. For s = 1 that
    is 3 products where the exact parts took 9-20, and the rounding is about 2^-(53 + beta)
    of the operands' norms (``slice_bits``).

    ``row_bound``: the bound as one number per row (n, 1), at least the row's largest element
    bound, for a caller that takes only that (a softmax's kernels: each row's logits share one
    error bound); not an (n, m) array written and read back."""
    largest = np.maximum(_largest_magnitude(a), _reused_largest_magnitude(b) if reuse
                         else _largest_magnitude(b))
    if not largest < 2.0 ** _HIGHEST_EXPONENT:  # an infinity or NaN included
        return None
    inner = a.shape[1]
    beta = slice_bits(inner)
    if exact_levels is not None:
        return _leveled_product(a, b, beta, exact_levels, reuse, row_bound)
    slices_a, rest_a, lowest_a = _split(a, 1, beta)
    slices_b, rest_b, lowest_b = _split_of_right(b, beta) if reuse else _split(b, 0, beta)
    if lowest_a + lowest_b < _LOWEST_UNIT_EXPONENT:
        return None
    parts = [p @ q for p in slices_a for q in slices_b]
    if not parts:
        parts = [np.zeros((a.shape[0], b.shape[1]))]
    bound = np.zeros((parts[0].shape[0], 1) if row_bound else parts[0].shape)
    if rest_a.any() or rest_b.any():
        # a b - A_s B_s = A_s R_b + R_a b (A_s = a - R_a, the captured part): Cauchy-Schwarz
        # on each, the norms' own rounding (a few operations over inner + 4 terms) covered,
        # and an absolute floor for what underflows in them
        rounding = gamma(inner + 8)
        norm_rest_a, norm_rest_b = norms(rest_a, 1), norms(rest_b, 0)
        norm_a = norms(a, 1) + norm_rest_a
        norm_b = norms(b, 0)
        if row_bound:  # each outer product's largest column
            norm_rest_b, norm_b = _row_largest(norm_rest_b), _row_largest(norm_b)
        bound = (np.outer(norm_a, norm_rest_b) + np.outer(norm_rest_a, norm_b)) * (
            1 + 4 * rounding) + (inner + 8) * _TINY
    return parts, bound


def _largest_magnitude(values: np.ndarray) -> float:
    """max |v| of an array (0 for none), inf where one is infinite, NaN where one is NaN: two
    passes, without an array of |v| (or of isfinite) as large as a vocabulary's weight."""
    if not values.size:
        return 0.0
    return float(np.maximum(np.max(values), -np.min(values)))


def _row_largest(values: np.ndarray) -> np.ndarray:
    """The largest of nonnegative ``values`` along their last axis, kept as one (0 where there
    is none)."""
    return np.max(values, axis=-1, keepdims=True, initial=0.0)


class _Leveled:
    """An operand's split for ``_leveled_product``: its slices, rests (rests[m] is the operand
    minus its first m slices, exactly: rests[0] is the operand, the last what the slices
    leave), the lowest unit exponent, the slices' norms along ``axis``, and the rests' norms
    (made on first use: a layer's weight keeps them for every chunk)."""

    def __init__(self, values: np.ndarray, axis: int, beta: int, most: int):
        self.axis, self.rests, self.slice_norms = axis, [values], []
        self.slices, _, self.lowest = _split(values, axis, beta, most, self.rests,
                                             self.slice_norms)
        self._rest_norms, self._stacked = {}, {}

    def rest(self, m: int) -> np.ndarray:
        """The operand minus its first m slices (all it has, when it has fewer)."""
        return self.rests[min(m, len(self.rests) - 1)]

    def stacked_rests(self, ms: tuple) -> np.ndarray:
        """``rest(m)`` for each m in ``ms``, one above the other along the split's axis (the
        right operand of ``_leveled_product``'s one rounded product), made once."""
        ms = tuple(min(m, len(self.rests) - 1) for m in ms)
        if ms not in self._stacked:
            self._stacked[ms] = np.concatenate([self.rests[m] for m in ms], axis=self.axis)
        return self._stacked[ms]

    def rest_norms(self, m: int) -> np.ndarray:
        """``norms`` of ``rest(m)`` along the split's axis."""
        m = min(m, len(self.rests) - 1)
        if m not in self._rest_norms:
            self._rest_norms[m] = norms(self.rests[m], self.axis)
        return self._rest_norms[m]


def _leveled_product(a: np.ndarray, b: np.ndarray, beta: int, levels: int, reuse: bool,
                     row_bound: bool = False):
    """``split_product`` with ``exact_levels``: a b = sum over i + j < levels of A_i B_j
    (exact) + sum_i A_i R_b(levels - i) + R_a b, where R(m) is an operand minus its first m
    slices. The rounded products' sum errs by at most gamma(terms) sum |X| |Y| (terms: those
    of each element's sum as ``_rounded_sum`` computes it), bounded by outer products of norms
    (Cauchy-Schwarz)."""
    left = _Leveled(a, 1, beta, levels)
    right = _split_of_right(b, beta, levels) if reuse else _Leveled(b, 0, beta, levels)
    if left.lowest + right.lowest < _LOWEST_UNIT_EXPONENT:
        return None
    exact = [(p, q) for i, p in enumerate(left.slices) for j, q in enumerate(right.slices)
             if i + j < levels]
    # (X, Y, norms of X's rows, norms of Y's columns, Y as right.rest(m): m)
    rounded = [(p, right.rest(levels - i), left.slice_norms[i], right.rest_norms(levels - i),
                levels - i) for i, p in enumerate(left.slices)]
    rounded.append((left.rest(levels), b, left.rest_norms(levels), right.rest_norms(0), 0))
    rounded = [r for r in rounded if r[2].any() and r[3].any()]
    n, m = a.shape[0], b.shape[1]
    parts = np.empty((max(len(exact) + bool(rounded), 1), n, m))
    if not (exact or rounded):
        parts[0] = 0.0
    for k, (x, y) in enumerate(exact):
        np.matmul(x, y, out=parts[k])
    if not rounded:
        return parts, np.zeros((n, 1) if row_bound else (n, m))
    # the rounded products added in float64 into one part: each element's sum of k =
    # len(rounded) inner products errs by at most gamma(its terms) of the sum of |X_k| |Y_k|
    # (Higham, Accuracy and Stability, 3.1): k inner as one product, inner + k - 1 as k
    summed = _rounded_sum(rounded, right, reuse, parts[-1])
    # the bound, sum_k gamma |X_k| |Y_k| <= sum_k gamma ||X_k,i|| ||Y_k,j||, plus a floor for
    # what underflows (nowhere a row or column is zero: exact zeros), as one product of
    # nonnegative numbers (its own rounding at most gamma(2 k) of it)
    terms = summed + 8  # the sums' terms, and the norms' few operations
    rounding = gamma(terms)
    scale = rounding * (1 + 4 * rounding) * (1 + 4 * len(rounded) * _U)
    # the scale applied after the product of norms: a subnormal norm times it underflowed to
    # 0 before its product with a large norm (a row of 1e-311 by a column of 2e28: 9e-291,
    # whose rounding the floor alone did not cover)
    rows = np.stack([r[2] for r in rounded] + [(r[2] > 0) * (terms * _TINY / scale)
                                               for r in rounded], axis=1)
    columns = np.stack([r[3] for r in rounded] + [r[3] > 0 for r in rounded])
    if row_bound:  # each row's largest: sum_k rows_k max_j columns_kj (all nonnegative)
        columns = _row_largest(columns)
    return parts, (rows @ columns) * scale


def _rounded_sum(rounded: list, right: _Leveled, reuse: bool, out: np.ndarray) -> int:
    """sum_k X_k Y_k of ``_leveled_product``'s rounded products into ``out`` (n, m), and the
    terms of each element's sum in the order computed (its rounding's gamma): where the
    result outnumbers the operands (logits: a few features by a vocabulary), as one product
    [X_1 ... X_k] [Y_1; ...; Y_k] (the right operands stacked once with their split where it
    is ``reuse``d, else per call), since each of k products wrote an (n, m) array that the
    sum read back: a third of the logits' time; else (few outputs of long sums, a gradient by
    the layer) product by product, where stacking would copy the long operands instead."""
    (n, inner), m = rounded[0][0].shape, rounded[0][1].shape[1]
    stacked = len(rounded) * inner
    if len(rounded) > 1 and m > stacked and (reuse or n > stacked):
        stacked_left = np.concatenate([r[0] for r in rounded], axis=1)
        np.matmul(stacked_left, right.stacked_rests(tuple(r[4] for r in rounded)), out=out)
        return stacked
    np.matmul(rounded[0][0], rounded[0][1], out=out)
    for x, y, *_ in rounded[1:]:
        out += x @ y
    return inner + len(rounded) - 1


# --- the right operand's split, made once for a batch's chunks ------------------------------------

# splits: (operand, (beta, levels), its split), latest last; magnitudes: id -> (operand, its
# largest magnitude)
_reuse = {"depth": 0, "splits": [], "magnitudes": {}}
_reuse_lock = threading.Lock()
REUSED_OPERANDS = 2  # a layer's weight and its transpose (the logits', a gradient's)


@contextmanager
def reusing_splits():
    """Within this block, ``split_product`` splits its right operand once for every call that
    passes the very same array object: a layer's weight, which every chunk of tokens
    multiplies (a weight of 32768 x 1024 took 1 s to split, once per chunk). The latest
    REUSED_OPERANDS such operands are kept (the weight's transpose for the logits, the weight
    for d loss / d x), and only until the block ends; so is each reused operand's largest
    magnitude, the range check of every call (``_reused_largest_magnitude``)."""
    with _reuse_lock:
        _reuse["depth"] += 1
    try:
        yield
    finally:
        with _reuse_lock:
            _reuse["depth"] -= 1
            if not _reuse["depth"]:
                _reuse["splits"], _reuse["magnitudes"] = [], {}


def _split_of_right(b: np.ndarray, beta: int, levels: int | None = None):
    """``_split(b, 0, beta)`` (``_Leveled(b, 0, beta, levels)`` where ``levels`` is given),
    from the block's earlier call where there was one."""
    def split():
        return _split(b, 0, beta) if levels is None else _Leveled(b, 0, beta, levels)

    with _reuse_lock:
        if not _reuse["depth"]:
            return split()
        splits = _reuse["splits"]
        for entry in splits:
            if entry[0] is b and entry[1] == (beta, levels):
                return entry[2]
        made = split()
        splits.append((b, (beta, levels), made))
        del splits[:-REUSED_OPERANDS]
        return made


def _reused_largest_magnitude(b: np.ndarray) -> float:
    """``_largest_magnitude(b)``, from the block's earlier call on the very same array where
    there was one (a layer's weight: every chunk of tokens checked all of it again, 24 ms a
    chunk at 128,256 classes when it was an array of |b|)."""
    with _reuse_lock:
        known = _reuse["magnitudes"].get(id(b))
        if known is not None and known[0] is b:
            return known[1]
    largest = _largest_magnitude(b)
    with _reuse_lock:
        if _reuse["depth"]:
            _reuse["magnitudes"][id(b)] = (b, largest)
    return largest
