# select: not float16 and not masked-probabilities and not masked-zero-weight
"""cross_entropy whose label smoothing gives class 0 no mass, as a port of a seq2seq loss that
treats class 0 as the padding token (OpenNMT-py's LabelSmoothingLoss sets one_hot[padding_idx]
= 0; here the padding index is fixed at 0): [C2] B01, B14.

Trigger: index targets with label_smoothing > 0 and C > 1: the smoothing term leaves out class
         0's log-probability (torch: (e / C) sum over every class of w_c nlp_c).
Symptom: permutation: moving class 0 elsewhere changes the loss; value checks: the loss is
         smaller by (e / C) w_0 nlp_0 per counted row.
"""
import torch
import torch.nn.functional as F


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """torch's cross_entropy, with its own smoothing term for index targets."""
    if target.is_floating_point() or label_smoothing == 0.0:
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    dim = 0 if input.dim() == 1 else 1
    classes = input.shape[dim]
    w = torch.ones(classes, dtype=input.dtype) if weight is None else weight
    logp = F.log_softmax(input, dim)
    nll = F.nll_loss(logp, target, weight=w, ignore_index=ignore_index, reduction="none")
    smoothing_weight = w.clone()
    smoothing_weight[0] = 0  # BUG: class 0 is "padding" and gets no smoothing mass
    shape = [1] * input.dim()
    shape[dim] = classes
    smooth = -(logp * smoothing_weight.view(shape)).sum(dim) / classes
    counted = target != ignore_index
    loss = (1 - label_smoothing) * nll + label_smoothing * torch.where(counted, smooth, 0.0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction != "mean":
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return loss.sum() / torch.where(counted, w[torch.where(counted, target, 0)], 0.0).sum()
