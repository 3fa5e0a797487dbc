"""A conformance run's state, shared by every test of the session: its settings, its
candidates, and what it builds once (the edge cases, the random cases its checks replay, the
probes' answers); the plugin (``conformance/plugin.py``) makes it from pytest's options."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

import numpy as np

from .bounded_cache import BoundedCache

# Hypothesis examples per random check, and whether a failure is shrunk to a minimal case
# (shrinking re-runs the reference on many variants of a failing case: seconds to minutes);
# 'llm' runs the language-model tier (conformance/specs/llm.py) as the edge cases, and no
# random checks.
PROFILES = {"quick": (8, False), "default": (30, True), "thorough": (400, True),
            "llm": (0, False)}
# The random cases a run keeps for sibling checks to replay, at most (the arrays they hold).
DRAWN_BYTES = 256 << 20


@dataclass
class ConformanceRun:
    """The session's settings and candidates, shared by every conformance test."""

    candidates: list
    seed: int
    profile: str
    require_grad: bool
    required_dtypes: set
    repeat: int = 1
    losses: tuple = ()  # --loss selection (empty: every loss)
    dtypes: tuple = ()  # --dtype selection (empty: every dtype)
    known_deviations: bool = True  # apply conformance/deviations (off: --no-known-deviations)
    maxfail_per_candidate: int | None = None
    failed_tests: dict = field(default_factory=dict, repr=False)  # candidate label -> count
    _edges: dict = field(default_factory=dict, repr=False)
    # the random cases each (loss, variant, examples) drew, replayed by its sibling checks
    drawn: BoundedCache = field(default_factory=lambda: BoundedCache(DRAWN_BYTES), repr=False)
    _llm_built: tuple | None = field(default=None, repr=False)  # (key, cases): the last built
    _probes: dict = field(default_factory=dict, repr=False)
    # (test function, loss, variant group) of every selected test (pytest_collection_finish)
    selected: set = field(default_factory=set, repr=False)
    # (loss, variant group) -> its place in the run's order of tests (``ahead.plan``)
    order: dict = field(default_factory=dict, repr=False)

    def edge_cases(self, spec, variant) -> list:
        """The spec's edge cases for a variant, built once per run (seeded by --seed); under
        --profile=llm the language-model tier's (``spec.llm``), built when asked for."""
        if self.profile == "llm":
            return [(edge_id, None) for edge_id, _ in (spec.llm(variant) if spec.llm else [])]
        return self.catalogue(spec, variant)

    def catalogue(self, spec, variant) -> list:
        """The spec's own edge cases for a variant (whatever the profile: the probe's too)."""
        key = (spec.name, variant)
        if key not in self._edges:
            self._edges[key] = spec.edge_cases(variant, np.random.default_rng(self.seed))
        return self._edges[key]

    def edge_ids(self, spec, group) -> list:
        """The ids of the edge cases of a variant group's members, in catalogue order."""
        ids = {}
        for variant in group.members:
            ids.update((edge_id, None) for edge_id, _ in self.edge_cases(spec, variant))
        return list(ids)

    def edge_group(self, spec, group, edge_id) -> list:
        """The edge case ``edge_id`` under every member of the group that has it."""
        if self.profile == "llm":  # a gigabyte a case: built when asked, only the last kept
            key = (spec.name, group, edge_id)
            if self._llm_built is None or self._llm_built[0] != key:
                self._llm_built = None  # dropped before the next is built
                self._llm_built = (key, [build(self.seed) for variant in group.members
                                         for other_id, build in spec.llm(variant)
                                         if other_id == edge_id])
            return self._llm_built[1]
        return [case for variant in group.members
                for other_id, case in self.edge_cases(spec, variant) if other_id == edge_id]

    def will_run(self, test: str, spec, group) -> bool:
        """Whether the run selected the test function ``test`` for this loss and variant
        group (for some candidate)."""
        return (test, spec.name, group) in self.selected

    def probed(self, candidate, spec, variant, gradient: bool, probe):
        """``probe()``'s answer for this candidate, spec, variant and kind, asked once per run."""
        key = (candidate.label, spec.name, variant, gradient)
        if key not in self._probes:
            self._probes[key] = probe()
        return self._probes[key]

    @property
    def examples(self) -> int:
        return PROFILES[self.profile][0]

    @property
    def shrink(self) -> bool:
        return PROFILES[self.profile][1]

    def repro(self, nodeid: str) -> str:
        """One command line that reruns exactly this test with this seed."""
        name = nodeid.split("::")[-1]
        impls = " ".join(shlex.quote(f"--impl={c.impl}") for c in self.candidates)
        return (f"pytest conformance {impls} --seed={self.seed} --profile={self.profile} "
                f"-k {shlex.quote(name)}")
