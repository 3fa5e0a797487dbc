"""multi_hot written exactly like the seed blog post's third example (pad, masked_fill by position).

Class: [C2] padding mask applied on the wrong axis. Source: /work/shared/seed (blog post
"What target values should be used with torch.nn.MultiLabelSoftMarginLoss?", Example 3).
Trigger: any row with padding when the padded width L == num_classes: class j is zeroed
         whenever position j of the padded row is padding (the seed's own input [[0, 2], [1, 2, 0]]
         gives [1, 0, 0] for row 0 instead of [1, 0, 1]); L != num_classes (L > 1) raises a
         masked_fill_ broadcast error; N = 0 raises in pad_sequence.
Symptom: lost labels or a RuntimeError on valid input. Exact when no row is padded and L == C.
         (Like the seed, a non-padding negative label wraps instead of raising.)
"""
import torch
import torch.nn.utils.rnn as rnn_utils


def multi_hot(labels, num_classes, padding_value=-1):
    if torch.is_tensor(labels):
        padded_labels = labels.long()
        target_labels = [[v for v in row if v != padding_value] for row in padded_labels.tolist()]
    else:
        target_labels = [list(row) for row in labels]
        # Pad with -1, where -1 represents 'no class'
        padded_labels = rnn_utils.pad_sequence(
            [torch.tensor(x, dtype=torch.long) for x in target_labels],
            batch_first=True, padding_value=padding_value)
    batch_size = len(target_labels)
    # Initialize target tensor, and filter padding with masked_fill
    targets = torch.zeros((batch_size, num_classes)).masked_fill_(
        padded_labels == padding_value, 0.0)
    # Populate target tensor (without masking)
    for i, row in enumerate(target_labels):
        for label in row:
            targets[i, label] = 1.0
    # Mask the previously set values at padded positions to 0  -- BUG: positions are not classes
    targets = targets.masked_fill_(padded_labels == padding_value, 0.0)
    return targets
