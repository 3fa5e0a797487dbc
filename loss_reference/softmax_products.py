"""linear_cross_entropy's gradients from a softmax gradient: the two products, bounded.

float32's first tier (``linear_float64.blas_gradients``) has every token's softmax gradient
G = r (softmax - onehot) as double-doubles, G_hi within (u + eps_i) |G_hi| of the exact G per
row i, and needs d input = G W (M, D) and d [W, b] = G^T [x, 1] (C, D + 1) as float64 balls.
Each is one BLAS product of G_hi, which errs by at most gamma |G_hi| |B| (gamma the product's
own, Higham 3.1; ``blocked_product``'s for the vocabulary), so with G_hi's own error the
radius is (gamma + u + eps) times a product of magnitudes, bounded two ways:

- ``GradientProducts.input_by_norms`` and ``layer_by_norms`` (every token and class):
  Cauchy-Schwarz without the target's entry, which holds nearly all of a row's magnitude and
  is added exactly: sum_c |G_ic| |W_ck| <= ||G_i without t_i|| ||W_:k|| + |G_it| |W_tk|,
  and per class c over the tokens sum_i |G_ic| |x_ik| <= ||G_:c without its targets||
  ||x_:k|| + the targets' terms. The norms cost a pass over G; a product of magnitudes cost
  as much as the product itself. At the ladder's third rung this bound is about twice the
  sharp one and leaves 109 of 4,096 classes and 4 of 512 tokens where the sharp one left 55
  and 2.
- ``GradientProducts.sharp`` (the rows and classes the norms leave): the product of magnitudes
  itself. |G| needs no array of its own: a row's entries have the sign s of its r but at the
  target, so |G| |W| = s G |W| + 2 |G_t| |W_t| and |G|^T Q = G^T (s Q) + 2 |G_t| Q at each
  token's target: products with W and |W|, and one with [x, s Q]. Both are computed sums with
  a negative term, so each is scaled up by its product's own rounding.

Every bound adds an underflow floor of (terms + 1) tiny and a factor 1 + 2^-40 for its own few
roundings.
"""

from __future__ import annotations

import numpy as np

from .balls import Ball
from .split_product import blocked_product, norms
from .split_product import gamma as blas_gamma

U = 2.0 ** -53
TINY = 2.0 ** -1022
SUBNORMAL = 2.0 ** -1074
SLACK = 1 + 2.0 ** -40  # the bounds' own few roundings


class GradientProducts:
    """The products of a kept softmax gradient (G_hi (M, C), eps (M,), ``left``: rows the
    kernel left, zeros with eps 0) by a call's layer (its weight W (C, D), input x (M, D),
    targets t), and their bounds; ``sign``: each token's sign s of r."""

    def __init__(self, call, G_hi: np.ndarray, eps: np.ndarray, left: np.ndarray,
                 sign: np.ndarray, tokens: slice = slice(None), W_magnitude=None):
        """``tokens``: the call's tokens that G's rows are (a chunk of them, or all);
        ``W_magnitude``: |W|, where the caller has it."""
        self.G, self.eps, self.left, self.sign = G_hi, eps, left, sign[tokens]
        self.t, self.W = call.rows.t[tokens], call.W_rows
        self.M, self.C = G_hi.shape
        self.D = self.W.shape[1]
        self.x_one = np.concatenate([call.x[tokens], np.ones((self.M, 1))], axis=1)
        self.G_t = G_hi[np.arange(self.M), self.t]  # each token's entry at its target
        self._W_columns = self._x_columns = None
        self._W_magnitude = W_magnitude

    # --- every token and class: Cauchy-Schwarz -------------------------------------------

    def input_by_norms(self, c: slice) -> Ball:
        """d input at the tokens ``c`` with the norms' bound."""
        G, t = self.G[c], self.t[c]
        mid, gamma = blocked_product(G, self.W)
        if self._W_columns is None:
            self._W_columns = norms(self.W, 0)
        others = _norms_without(np.einsum("ij,ij->i", G, G), self.G_t[c] ** 2, self.C)
        magnitude = np.outer(others, self._W_columns) + np.abs(self.G_t[c])[:, None] * np.abs(
            self.W[t])
        scale = (gamma + U + self.eps[c]) * (1 + 4 * blas_gamma(self.C + 4)) * (1 + 4 * U)
        bound = magnitude * (scale * SLACK)[:, None] + (self.C + 1) * TINY
        bound[self.left[c]] = np.inf
        return Ball(mid, bound)

    def layer_by_norms(self, classes: slice) -> Ball:
        """The rows ``classes`` of d [W, b], summed over every token, with the norms' bound."""
        first, last = classes.indices(self.C)[:2]
        G = self.G[:, first:last]
        mid = G.T @ self.x_one
        if self._x_columns is None:
            self._x_columns = norms(self.x_one, 0)
        mine = (self.t >= first) & (self.t < last)
        at = self.t[mine] - first
        target_squares = np.zeros(last - first)
        np.add.at(target_squares, at, self.G_t[mine] ** 2)
        others = _norms_without(np.einsum("ij,ij->j", G, G), target_squares, self.M)
        magnitude = np.outer(others, self._x_columns)
        np.add.at(magnitude, at, np.abs(self.G_t[mine])[:, None] * np.abs(self.x_one[mine]))
        scale = (blas_gamma(self.M) + U + np.max(self.eps, initial=0.0)) * (
            1 + 4 * blas_gamma(self.M + 4)) * (1 + 4 * U) * SLACK
        bound = magnitude * scale + (self.M + 1) * TINY
        if self.left.any():
            bound[:] = np.inf
        return Ball(mid, bound)

    # --- the rows and classes left: the products of magnitudes ---------------------------

    def sharp(self, tokens: np.ndarray, classes: np.ndarray) -> tuple:
        """(d input at ``tokens``, d [W, b] at ``classes``) with the sharp bounds (either None
        where there are none)."""
        return (self.input_sharp(tokens) if len(tokens) else None,
                self.layer_sharp(classes) if len(classes) else None)

    def input_sharp(self, c) -> Ball:
        """d input at the tokens ``c`` (a slice or indices) with the sharp bound."""
        t, G = self.t[c], self.G[c]
        if self._W_magnitude is None:
            self._W_magnitude = np.abs(self.W)
        mid, gamma = blocked_product(G, self.W)
        magnitude = blocked_product(G, self._W_magnitude)[0]
        magnitude *= self.sign[c, None]
        magnitude += 2 * np.abs(self.G_t[c])[:, None] * np.abs(self.W[t])
        scale = (gamma + U + self.eps[c]) * (1 + 2 * gamma) * (1 + 4 * U) * SLACK
        bound = magnitude * scale[:, None] + (self.C + 1) * TINY
        bound[self.left[c]] = np.inf
        return Ball(mid, bound)

    def layer_sharp(self, classes) -> Ball:
        """The rows ``classes`` (a slice or indices) of d [W, b] with the sharp bound."""
        D, gamma = self.D, blas_gamma(self.M)
        Q = (gamma + U + self.eps)[:, None] * np.abs(self.x_one)
        G = self.G[:, classes]
        both = G.T @ np.concatenate([self.x_one, self.sign[:, None] * Q], axis=1)
        bound = both[:, D + 1:]
        where = np.full(self.C, -1)
        where[np.arange(self.C)[classes]] = np.arange(G.shape[1])
        at = where[self.t]
        mine = at >= 0
        np.add.at(bound, at[mine], 2 * np.abs(self.G_t[mine])[:, None] * Q[mine])
        bound *= (1 + 4 * gamma + 4 * U) * SLACK
        bound += (self.M + 1) * TINY
        if self.left.any():
            bound[:] = np.inf
        return Ball(both[:, :D + 1], bound)


def _norms_without(all_squares: np.ndarray, removed_squares: np.ndarray, terms: int):
    """Bounds on the Euclidean norms of vectors without some entries, from ``all_squares``
    (the computed sums of every entry's computed square, ``terms`` of them) and the removed
    entries' squares: the difference, plus what the sums' rounding (gamma(terms) of them) and
    the squares' (u each, 2^-1075 where one underflows) may hide; inf where a square or a sum
    overflowed (the sharp bounds then take those rows)."""
    slack = 4 * blas_gamma(terms + 2) + 4 * U
    with np.errstate(invalid="ignore"):  # inf - inf: an overflow, bounded by inf below
        rest = np.maximum(all_squares - removed_squares, 0.0)
    rest = rest + slack * all_squares + terms * SUBNORMAL
    rest[~np.isfinite(all_squares)] = np.inf
    return np.sqrt(rest)
