"""multi_hot built as one_hot(labels).sum(1), which counts repeated labels.

Class: [C11] convention (indicator vs. count). KNOWN_BUGS B47-style multiplicity mismatch; the
seed's "binary indicators 0.0 or 1.0" contract.
Trigger: a label repeated in a row, e.g. [[2, 2, 0]].
Symptom: the entry is 2.0 (the count) instead of 1.0. Rows without repeats exact.
"""
import torch
import torch.nn.functional as F


def _as_padded(labels, padding_value):
    if torch.is_tensor(labels):
        return labels.long()
    rows = [[int(v) for v in r] for r in labels]
    L = max((len(r) for r in rows), default=0)
    return torch.tensor([r + [padding_value] * (L - len(r)) for r in rows],
                        dtype=torch.long).reshape(len(rows), L)


def multi_hot(labels, num_classes, padding_value=-1):
    labels = _as_padded(labels, padding_value)
    valid = labels != padding_value
    if (valid & ((labels < 0) | (labels >= num_classes))).any():
        raise ValueError("label out of range")
    oh = F.one_hot(torch.where(valid, labels, 0), num_classes) * valid.unsqueeze(-1)
    return oh.sum(dim=1).float()  # BUG: counts, not indicators
