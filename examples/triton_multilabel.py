"""A fused Triton kernel for ``multilabel_soft_margin_loss``, forward and backward.

Run it through the suite::

    TRITON_INTERPRET=1 pytest conformance --impl=examples/triton_multilabel.py \\
        --loss multilabel_soft_margin_loss --profile=quick          # CPU, Triton's interpreter
    pytest conformance --impl=examples/triton_multilabel.py --device=cuda \\
        --loss multilabel_soft_margin_loss                          # on a GPU

Contract (``torch.nn.functional.multilabel_soft_margin_loss``): input (N, C) or (C,), target of
the same shape (0/1 indicators or soft targets in [0, 1]), weight (C,) optional; the per-sample
loss is ``sum_c w_c (softplus(x_c) - y_c x_c) / C``, reduced by ``none`` (shape (N,) or ()),
``mean`` (nan for an empty batch) or ``sum``.

The kernels:

- ``_forward_kernel``: one program per row, looping over the classes in blocks of ``BLOCK_C``;
  each term is formed as ``(1 - y) softplus(x) + y softplus(-x)`` (equal to
  ``softplus(x) - y x``, without its cancellation when ``y x`` is large) with the stable
  ``softplus(z) = max(z, 0) + log1p(exp(-|z|))``, weighted, and accumulated in float32 (float64
  for a float64 input); the row sum is divided by C once. The batch reduction of the N row
  losses happens in the accumulation dtype before the one rounding to the input's dtype.
- ``_backward_kernel``: the same row blocking; with ``g_n`` the upstream gradient of row n (the
  mean's 1/N folded in), ``d/dx = g_n w_c (sigmoid(x) - y) / C`` and ``d/dy = -g_n w_c x / C``.
- ``_weight_grad_kernel``: one program per block of classes, summing ``g_n term_nc / C`` over
  the rows in a fixed order (deterministic, no atomics).

Numerics: ``log1p`` is not in ``triton.language`` on every backend, so ``log1p(e)`` for
``e = exp(-|z|)`` in (0, 1] uses Goldberg's formula ``log(u) e / (u - 1)`` with ``u = 1 + e``
(exact to a few ulps; ``e`` itself where ``u`` rounds to 1). Everything is computed in float32
(float64 for float64 inputs) from the input's values, so float16/bfloat16 inputs are upcast on
load and rounded once on store.

Devices: tensors on CUDA run the compiled kernels; tensors on the CPU need Triton's interpreter
(``TRITON_INTERPRET=1`` in the environment before triton is imported), and a CPU call without it
raises a RuntimeError that says so. Inputs may be non-contiguous (strides are passed through).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

FRAMEWORK = "torch"
BLOCK_C = 128
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
_REDUCTIONS = ("none", "mean", "sum")


@triton.jit
def _softplus(z):
    """log(1 + exp(z)) without overflow: max(z, 0) + log1p(exp(-|z|))."""
    e = tl.exp(-tl.abs(z))
    u = 1.0 + e
    d = u - 1.0
    log1p_e = tl.where(d == 0.0, e, tl.log(u) * (e / tl.where(d == 0.0, 1.0, d)))
    return tl.maximum(z, 0.0) + log1p_e


@triton.jit
def _sigmoid(z):
    e = tl.exp(-tl.abs(z))
    return tl.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@triton.jit
def _forward_kernel(x_ptr, y_ptr, w_ptr, out_ptr, C, sxn, sxc, syn, syc, swc,
                    HAS_WEIGHT: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr):
    row = tl.program_id(0)
    offsets = tl.arange(0, BLOCK_C)
    acc = tl.zeros((BLOCK_C,), dtype=ACC)
    for start in range(0, C, BLOCK_C):
        cols = start + offsets
        mask = cols < C
        x = tl.load(x_ptr + row * sxn + cols * sxc, mask=mask, other=0.0).to(ACC)
        y = tl.load(y_ptr + row * syn + cols * syc, mask=mask, other=0.0).to(ACC)
        term = (1.0 - y) * _softplus(x) + y * _softplus(-x)
        if HAS_WEIGHT:
            term = term * tl.load(w_ptr + cols * swc, mask=mask, other=0.0).to(ACC)
        acc += tl.where(mask, term, 0.0)
    tl.store(out_ptr + row, tl.sum(acc, axis=0) / C)


@triton.jit
def _backward_kernel(x_ptr, y_ptr, w_ptr, g_ptr, gx_ptr, gy_ptr, C, sxn, sxc, syn, syc, swc,
                     HAS_WEIGHT: tl.constexpr, WANT_X: tl.constexpr, WANT_Y: tl.constexpr,
                     ACC: tl.constexpr, BLOCK_C: tl.constexpr):
    row = tl.program_id(0)
    offsets = tl.arange(0, BLOCK_C)
    g = tl.load(g_ptr + row).to(ACC) / C
    for start in range(0, C, BLOCK_C):
        cols = start + offsets
        mask = cols < C
        x = tl.load(x_ptr + row * sxn + cols * sxc, mask=mask, other=0.0).to(ACC)
        scale = g + tl.zeros((BLOCK_C,), dtype=ACC)
        if HAS_WEIGHT:
            scale = scale * tl.load(w_ptr + cols * swc, mask=mask, other=0.0).to(ACC)
        if WANT_X:
            y = tl.load(y_ptr + row * syn + cols * syc, mask=mask, other=0.0).to(ACC)
            gx = scale * (_sigmoid(x) - y)
            tl.store(gx_ptr + row * C + cols, gx.to(gx_ptr.dtype.element_ty), mask=mask)
        if WANT_Y:
            gy = -scale * x
            tl.store(gy_ptr + row * C + cols, gy.to(gy_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _weight_grad_kernel(x_ptr, y_ptr, g_ptr, gw_ptr, N, C, sxn, sxc, syn, syc,
                        ACC: tl.constexpr, BLOCK_C: tl.constexpr):
    block = tl.program_id(0)
    cols = block * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = cols < C
    acc = tl.zeros((BLOCK_C,), dtype=ACC)
    for row in range(0, N):
        x = tl.load(x_ptr + row * sxn + cols * sxc, mask=mask, other=0.0).to(ACC)
        y = tl.load(y_ptr + row * syn + cols * syc, mask=mask, other=0.0).to(ACC)
        g = tl.load(g_ptr + row).to(ACC)
        acc += g * ((1.0 - y) * _softplus(x) + y * _softplus(-x))
    tl.store(gw_ptr + cols, (acc / C).to(gw_ptr.dtype.element_ty), mask=mask)


def _acc_dtype(dtype):
    return (torch.float64, tl.float64) if dtype == torch.float64 else (torch.float32, tl.float32)


def _store_dtype(dtype):
    """The dtype the kernels store gradients in. Triton 3.9's interpreter converts float32 to
    bfloat16 by truncation and gets subnormals wrong (6.9e-40 becomes 1.02e-38), so there the
    kernels store float32 and torch rounds once; compiled kernels store the dtype itself."""
    return torch.float32 if INTERPRETED and dtype == torch.bfloat16 else dtype


def _check_device(tensor):
    if tensor.device.type == "cpu" and not INTERPRETED:
        raise RuntimeError("triton_multilabel: CPU tensors need Triton's interpreter; set "
                           "TRITON_INTERPRET=1 before importing triton, or use CUDA tensors")


def _as_2d(tensor):
    return tensor.unsqueeze(0) if tensor.dim() == 1 else tensor


def _row_upstream(grad_output, reduction, n, acc_dtype):
    """The upstream gradient of each row, (N,), in the accumulation dtype."""
    g = grad_output.to(acc_dtype)
    if reduction == "none":
        return g.reshape(n).contiguous()
    if reduction == "mean":
        g = g / n
    return g.reshape(()).expand(n).contiguous()


class _MultilabelSoftMargin(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, target, weight, reduction):
        x, y = _as_2d(input), _as_2d(target)
        n, c = x.shape
        acc_torch, acc_tl = _acc_dtype(input.dtype)
        rows = torch.empty(n, dtype=acc_torch, device=input.device)
        w = weight if weight is not None else x  # a placeholder pointer, never read
        if n > 0:
            _forward_kernel[(n,)](x, y, w, rows, c, x.stride(0), x.stride(1), y.stride(0),
                                  y.stride(1), w.stride(0) if weight is not None else 0,
                                  HAS_WEIGHT=weight is not None, ACC=acc_tl, BLOCK_C=BLOCK_C)
        if reduction == "none":
            out = rows.reshape(input.shape[:-1])
        elif reduction == "sum":
            out = rows.sum()
        else:
            out = rows.mean() if n > 0 else torch.full((), float("nan"), dtype=acc_torch,
                                                          device=input.device)
        ctx.save_for_backward(input, target, weight)
        ctx.reduction = reduction
        return out.to(input.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        input, target, weight = ctx.saved_tensors
        want_x, want_y, want_w = ctx.needs_input_grad[:3]
        x, y = _as_2d(input), _as_2d(target)
        n, c = x.shape
        acc_torch, acc_tl = _acc_dtype(input.dtype)
        g = _row_upstream(grad_output, ctx.reduction, n, acc_torch)
        device = input.device
        gx = torch.empty((n, c), dtype=_store_dtype(input.dtype), device=device) if want_x else None
        gy = (torch.empty((n, c), dtype=_store_dtype(target.dtype), device=device) if want_y
              else None)
        gw = None
        w = weight if weight is not None else x
        sw = w.stride(0) if weight is not None else 0
        if n > 0 and (want_x or want_y):
            _backward_kernel[(n,)](x, y, w, g, gx if want_x else x, gy if want_y else x, c,
                                   x.stride(0), x.stride(1), y.stride(0), y.stride(1), sw,
                                   HAS_WEIGHT=weight is not None, WANT_X=want_x, WANT_Y=want_y,
                                   ACC=acc_tl, BLOCK_C=BLOCK_C)
        if want_w:
            gw = torch.empty(c, dtype=_store_dtype(weight.dtype), device=input.device)
            if c > 0:
                _weight_grad_kernel[(triton.cdiv(c, BLOCK_C),)](
                    x, y, g, gw, n, c, x.stride(0), x.stride(1), y.stride(0), y.stride(1),
                    ACC=acc_tl, BLOCK_C=BLOCK_C)
            gw = gw.to(weight.dtype)
        return (None if gx is None else gx.reshape(input.shape).to(input.dtype),
                None if gy is None else gy.reshape(target.shape).to(target.dtype), gw, None)


def _resolve_reduction(size_average, reduce, reduction):
    """torch's legacy arguments, when given, override ``reduction``."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        return "none" if not reduce else ("mean" if size_average else "sum")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction!r} is not a valid value for reduction "
                         f"(one of {', '.join(_REDUCTIONS)})")
    return reduction


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction="mean"):
    """``F.multilabel_soft_margin_loss`` by the Triton kernels of this file."""
    reduction = _resolve_reduction(size_average, reduce, reduction)
    if input.dim() not in (1, 2):
        raise ValueError(f"input must be (C,) or (N, C), got shape {tuple(input.shape)}")
    if target.shape != input.shape:
        raise ValueError(f"target shape {tuple(target.shape)} does not match input shape "
                         f"{tuple(input.shape)}")
    if weight is not None and tuple(weight.shape) != tuple(input.shape[-1:]):
        raise ValueError(f"weight must have shape (C,) = {tuple(input.shape[-1:])}, got "
                         f"{tuple(weight.shape)}")
    for tensor in (input, target) + ((weight,) if weight is not None else ()):
        if tensor.dtype not in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
            raise TypeError(f"expected floating tensors, got {tensor.dtype}")
        _check_device(tensor)
    return _MultilabelSoftMargin.apply(input, target, weight, reduction)
