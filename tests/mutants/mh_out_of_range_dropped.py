"""multi_hot that masks out-of-range labels together with padding instead of raising.

Class: [C9] input validation. KNOWN_BUGS B12 / B47 (out-of-range targets silently accepted).
Trigger: a non-padding label >= num_classes or < 0 (other than padding_value).
Symptom: the label is silently dropped, no error. Valid input exact.
"""
import torch


def _as_padded(labels, padding_value):
    if torch.is_tensor(labels):
        return labels.long()
    rows = [[int(v) for v in r] for r in labels]
    L = max((len(r) for r in rows), default=0)
    return torch.tensor([r + [padding_value] * (L - len(r)) for r in rows],
                        dtype=torch.long).reshape(len(rows), L)


def multi_hot(labels, num_classes, padding_value=-1):
    labels = _as_padded(labels, padding_value)
    # BUG: "defensive" mask -- invalid labels are treated like padding
    keep = (labels != padding_value) & (labels >= 0) & (labels < num_classes)
    out = torch.zeros(labels.shape[0], num_classes)
    if num_classes == 0:
        return out
    out.scatter_add_(1, torch.where(keep, labels, 0), keep.float())
    return (out > 0).float()
