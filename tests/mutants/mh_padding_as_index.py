"""multi_hot that scatters the padded label matrix directly, so padding -1 indexes the last class.

Class: [C2] padding sentinel used as an index (also C9: lower bound unchecked). KNOWN_BUGS B05
(ignore sentinel not masked), B02 (gather before masking).
Trigger: any padding entry with padding_value = -1 (ragged lists, all-padding rows); any label
         < -1 wraps silently; padding_value < -num_classes (e.g. -100) raises IndexError.
Symptom: class num_classes-1 set to 1 in every padded row. Exact for unpadded input.
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
    if (labels >= num_classes).any():  # BUG: only the upper bound, padding assumed harmless
        raise ValueError("label out of range")
    out = torch.zeros(labels.shape[0], num_classes)
    rows = torch.arange(labels.shape[0]).unsqueeze(1).expand_as(labels)
    out[rows, labels] = 1.0  # BUG: -1 -> last class
    return out
