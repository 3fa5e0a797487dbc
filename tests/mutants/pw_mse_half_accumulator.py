"""mse_loss "kernel" that adds per-tile partial sums into an accumulator of the input dtype.

Class: [C6] low precision (accumulation in float16 / bfloat16). KNOWN_BUGS B10, B50 (reductions
done in the input dtype), B13.
Trigger: float16 / bfloat16 input with reduction 'sum' or 'mean' over many tiles (thousands of
         elements): each partial sum is rounded to the input dtype and added in it.
Symptom: the total stagnates: bfloat16 'sum' of 4096 squares ~ 900 gives 2.98e6, exact 3.81e6
         (50 ulps); partial sums beyond the dtype's range overflow where the mean is finite
         (float16 'mean' inf, exact 930). float32 / float64 partial sums barely drift.
"""
from torch.nn import _reduction as _Reduction

TILE = 8  # elements per partial sum (a thread's share)


def mse_loss(input, target, size_average=None, reduce=None, reduction='mean', weight=None):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("mse_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    if weight is not None and weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    loss = (input.double() - target.double()) ** 2
    if weight is not None:
        loss = loss * weight.double()
    if reduction == 'none':
        return loss.to(input.dtype)
    flat = loss.reshape(-1)
    total = flat[:0].sum().to(input.dtype)  # BUG: the accumulator has the input dtype
    for start in range(0, flat.numel(), TILE):
        total = total + flat[start:start + TILE].sum().to(input.dtype)
    if reduction == 'sum':
        return total
    divisor = weight.double().sum() if weight is not None else flat.numel()
    return (total.double() / divisor).to(input.dtype)
