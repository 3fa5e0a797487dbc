"""The pytest plugin: command-line options, the candidates, parametrization and the header.

Registered through the ``pytest11`` entry point, so once the suite is installed
``pytest conformance --impl=...`` works from any directory: the bare argument ``conformance``
is pointed at the installed package when no such path exists where pytest runs.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

PACKAGE_DIR = Path(__file__).resolve().parent
# Hypothesis examples per random check, and whether a failure is shrunk to a minimal case
# (shrinking re-runs the reference on many variants of a failing case: seconds to minutes).
PROFILES = {"quick": (8, False), "default": (30, True), "thorough": (400, True)}
DTYPES = ("float64", "float32", "float16", "bfloat16")


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "loss conformance suite")
    group.addoption("--impl", action="append", default=[], metavar="NAME",
                    help="candidate to test: torch, torch-cuda, numpy, a dotted module name or "
                         "a path to a .py file; may be given several times (default: torch)")
    group.addoption("--seed", type=int, default=0,
                    help="seed of every random draw (default 0: runs are reproducible)")
    group.addoption("--profile", choices=sorted(PROFILES), default="default",
                    help="random examples per check: quick 8 (failures not shrunk), default 30, "
                         "thorough 400")
    group.addoption("--require-grad", action="store_true",
                    help="fail, rather than skip, gradient checks of forward-only candidates")
    group.addoption("--require-dtype", action="append", default=[], metavar="DTYPE",
                    help="fail, rather than skip, when a candidate declines this dtype "
                         "(float64, float32, float16, bfloat16 or all); may be repeated")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Point a bare ``conformance`` argument at the installed suite when it is not a path here."""
    for index, arg in enumerate(args):
        head, sep, rest = arg.partition("::")
        parts = Path(head).parts
        if parts and parts[0] == "conformance" and not Path(head).exists():
            args[index] = str(PACKAGE_DIR.joinpath(*parts[1:])) + sep + rest


@dataclass
class ConformanceRun:
    """The session's settings and candidates, shared by every conformance test."""

    candidates: list
    seed: int
    profile: str
    require_grad: bool
    required_dtypes: set

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


_RUN_KEY = pytest.StashKey[ConformanceRun]()


def _validate(config):
    unknown = [d for d in config.getoption("--require-dtype") if d not in DTYPES + ("all",)]
    if unknown:
        raise pytest.UsageError(f"--require-dtype={unknown[0]}: unknown dtype; use one of "
                                f"{', '.join(DTYPES)} or all")


def pytest_configure(config):
    _validate(config)
    if config.getoption("--impl"):
        conformance_run(config)  # report a bad --impl before collecting anything


def conformance_run(config) -> ConformanceRun:
    """The session's ConformanceRun, loading the candidates on first use."""
    if _RUN_KEY not in config.stash:
        from .candidates import CandidateError, load_candidates

        try:
            candidates = load_candidates(config.getoption("--impl") or ["torch"])
        except CandidateError as error:
            raise pytest.UsageError(str(error)) from None
        required = set(config.getoption("--require-dtype"))
        config.stash[_RUN_KEY] = ConformanceRun(
            candidates, config.getoption("--seed"), config.getoption("--profile"),
            config.getoption("--require-grad"),
            set(DTYPES) if "all" in required else required)
    return config.stash[_RUN_KEY]


def pytest_report_header(config):
    if _RUN_KEY not in config.stash:
        return None
    import torch

    run = config.stash[_RUN_KEY]
    lines = [f"loss-conformance: seed {run.seed}, profile {run.profile} "
             f"({run.examples} random examples per check); torch {torch.__version__}, "
             f"numpy {np.__version__}"]
    lines += [f"  candidate {c.describe()}" for c in run.candidates]
    return lines


def pytest_generate_tests(metafunc):
    """Parametrize the conformance tests over candidates, specs, variants and cases."""
    names = set(metafunc.fixturenames)
    if "candidate" not in names or "spec" not in names:
        return
    from .specs import SPECS

    run = conformance_run(metafunc.config)
    params, ids = [], []
    for candidate in run.candidates:
        for spec_name in candidate.functions:
            spec = SPECS[spec_name]
            if "gradient" in metafunc.function.__name__ and not spec.differentiable:
                continue
            for item, item_id in _items(metafunc, spec, run):
                params.append((candidate, spec) + item)
                ids.append(f"{candidate.label}-{spec.name}-{item_id}")
    argnames = ["candidate", "spec"] + [n for n in ("variant", "edge", "invalid") if n in names]
    metafunc.parametrize(argnames, params, ids=ids)


def _items(metafunc, spec, run):
    """The per-spec parameters of a test: variants, (variant, edge case) or invalid calls."""
    names = set(metafunc.fixturenames)
    if "invalid" in names:
        return [((call,), call.id) for call in spec.invalid_calls()]
    if "edge" in names:
        rng = np.random.default_rng(run.seed)
        return [((variant, edge), f"{variant.id}-{edge[0]}")
                for variant in spec.variants for edge in spec.edge_cases(variant, rng)]
    return [((variant,), variant.id) for variant in spec.variants]


@pytest.fixture(scope="session")
def conformance(request) -> ConformanceRun:
    """The session's ConformanceRun (settings and candidates)."""
    return conformance_run(request.config)
