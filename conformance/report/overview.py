"""The overview of a run: per candidate, one state per loss and dtype, from summary["tests"].

A cell gathers the tests of one candidate, loss and dtype. Its state:

    failed     any of its tests failed or errored
    xfailed    known deviation: some tests xfailed, none failed
    skipped    every test skipped
    passed     otherwise (xpassed tests count as passed)
    missing    not provided: the candidate does not implement the loss (its "missing" list)
    none       no test of this candidate ran there (the dtype is not the loss's, or -k left it out)

Tests without a candidate (the speed tests, which time every candidate at once) have no cell.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .cells import dtype_key
from .markdown import candidate_labels

PASSED, XFAILED, FAILED, SKIPPED, MISSING, EMPTY = (
    "passed", "xfailed", "failed", "skipped", "missing", "none")
STATES = (PASSED, XFAILED, FAILED, SKIPPED, MISSING, EMPTY)


@dataclass
class Matrix:
    """One candidate's overview: losses (rows) x dtypes (columns), a state per cell."""

    candidate: str
    losses: list
    dtypes: list  # a dtype of None (a test with no dtype) is a column of its own, last
    states: dict = field(default_factory=dict)  # (loss, dtype) -> state
    counts: dict = field(default_factory=dict)  # (loss, dtype) -> Counter of test outcomes

    def state(self, loss: str, dtype) -> str:
        """The state of one cell."""
        return self.states.get((loss, dtype), EMPTY)

    def failed(self, loss: str | None = None) -> bool:
        """Whether any cell (of ``loss``, if given) failed."""
        return any(state == FAILED for (name, _), state in self.states.items()
                   if loss is None or name == loss)


def cell_state(outcomes: Counter) -> str:
    """The state of a cell from the outcomes of its tests (see the module docstring)."""
    if outcomes["failed"] or outcomes["error"]:
        return FAILED
    if outcomes["xfailed"]:
        return XFAILED
    if outcomes and outcomes["skipped"] == sum(outcomes.values()):
        return SKIPPED
    return PASSED


def column_key(dtype):
    """Sort key of a dtype column: the dtype order, then by name, None (no dtype) last."""
    return (dtype is None, dtype_key(dtype or ""))


def overview(summary: dict) -> list[Matrix]:
    """One Matrix per candidate, in the summary's candidate order, all with the same rows and
    columns: every loss some candidate was tested on or lacks, every dtype tested."""
    counts = {}
    for test in (summary.get("tests") or {}).values():
        if test.get("candidate") is not None:
            key = (test["candidate"], test.get("loss"), test.get("dtype"))
            counts.setdefault(key, Counter())[test.get("outcome")] += 1
    missing = {c["label"]: set(c.get("missing") or []) for c in summary.get("candidates", [])}
    losses = sorted({loss for _, loss, _ in counts} | set().union(*missing.values()), key=str)
    dtypes = sorted({dtype for _, _, dtype in counts}, key=column_key)
    dtypes_of = {loss: {d for _, name, d in counts if name == loss} for loss in losses}
    matrices = []
    for label in candidate_labels(summary):
        if label not in missing and not any(key[0] == label for key in counts):
            continue  # a candidate only the speed rows or plots name
        matrix = Matrix(label, losses, dtypes)
        for loss in losses:
            for dtype in dtypes:
                outcomes = counts.get((label, loss, dtype))
                if outcomes:
                    matrix.counts[(loss, dtype)] = outcomes
                    matrix.states[(loss, dtype)] = cell_state(outcomes)
                elif loss in missing.get(label, ()) and (dtype in dtypes_of[loss]
                                                         or not dtypes_of[loss]):
                    matrix.states[(loss, dtype)] = MISSING
        matrices.append(matrix)
    return matrices
