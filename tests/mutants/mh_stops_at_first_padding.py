"""multi_hot that stops reading a row at its first padding entry.

Class: [C2] padding semantics (padding assumed to be a suffix). KNOWN_BUGS B47 (sentinel as
terminator vs. skip: the opposite mistake to mlm_minus_one_skip), B05.
Trigger: a padded label row with a real label after a padding entry, e.g. [[-1, 2], [0, -1]]
         (padding sets nothing, other entries are labels); an invalid label after the first
         padding entry is also not validated.
Symptom: labels after the first padding entry are lost (and invalid ones not rejected).
         Rows padded only at the end are exact.
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
    out = torch.zeros(labels.shape[0], num_classes)
    for i, row in enumerate(labels.tolist()):
        for v in row:
            if v == padding_value:
                break  # BUG: "end of this row's labels"
            if not 0 <= v < num_classes:
                raise ValueError(f"label {v} out of range [0, {num_classes})")
            out[i, v] = 1.0
    return out
