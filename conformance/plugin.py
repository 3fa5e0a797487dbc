"""The pytest plugin: command-line options, the candidates, parametrization and the header.

Registered through the ``pytest11`` entry point, so once the suite is installed
``pytest conformance --impl=...`` works from any directory: the bare argument ``conformance``
is pointed at the installed package when no such path exists where pytest runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from loss_reference.formats import DTYPES

from .run import PROFILES, ConformanceRun

PACKAGE_DIR = Path(__file__).resolve().parent
LLM_TESTS = ("test_edge_value", "test_edge_gradient")


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "loss conformance suite")
    group.addoption("--impl", action="append", default=[], metavar="NAME",
                    help="candidate to test: torch, torch-cuda, numpy, a dotted module name or "
                         "a path to a .py file; may be given several times (default: torch)")
    group.addoption("--seed", type=int, default=0,
                    help="seed of every random draw (default 0: runs are reproducible)")
    group.addoption("--profile", choices=sorted(PROFILES), default="default",
                    help="random examples per check, shared out over the reductions: quick 8 "
                         "(failures not shrunk), default 30, thorough 400")
    group.addoption("--require-grad", action="store_true",
                    help="fail, rather than skip, gradient checks of forward-only candidates")
    group.addoption("--require-dtype", action="append", default=[], metavar="DTYPE",
                    help="fail, rather than skip, when a candidate declines this dtype "
                         "(float64, float32, float16, bfloat16 or all); may be repeated")
    group.addoption("--report-dir", default="conformance-report", metavar="DIR",
                    help="where results and reports are written (default: conformance-report/)")
    group.addoption("--no-report", action="store_true",
                    help="write no results and no reports")
    group.addoption("--summary-only", action="store_true",
                    help="write the results and summary.json but not the Markdown, HTML and "
                         "plots (python -m conformance.report DIR renders them later)")
    group.addoption("--speed", action="store_true",
                    help="also time every covered loss for every candidate, on each loss's "
                         "ladder of sizes (run without -n for stable figures)")
    group.addoption("--speed-dtype", action="append", default=[], metavar="DTYPE",
                    help="dtype to time (default float32 and bfloat16); may be repeated")
    group.addoption("--speed-sizes", default=None, metavar="RUNGS",
                    help="the rungs of each loss's size ladder to time, comma-separated: tiny, "
                         "small, medium, large, huge, or all (default tiny,small,medium,large)")
    group.addoption("--speed-budget", type=float, default=None, metavar="SECONDS",
                    help="seconds of interleaved timing rounds per size, all candidates together "
                         "(default 0.3; more rounds, steadier ratios, a longer run)")
    group.addoption("--speed-threads", type=int, default=None, metavar="N",
                    help="torch threads while timing (default 1: repeatable on a shared "
                         "machine; give your core count to time multi-threaded)")
    group.addoption("--baseline", metavar="FILE",
                    help="a summary.json of an earlier run: exit 1 on any accuracy or speed "
                         "regression against it")
    group.addoption("--update-baseline", action="store_true",
                    help="write this run's summary to the --baseline FILE instead of comparing")
    group.addoption("--speed-noise", type=float, default=None, metavar="FRACTION",
                    help="slowdown against the baseline treated as noise (default 0.25)")
    group.addoption("--xfails", metavar="FILE",
                    help="known failures: one test id prefix per line, then '# reason'")
    group.addoption("--no-known-deviations", action="store_true",
                    help="judge the built-in aliases without their list of known deviations "
                         "(conformance/deviations): every deviation then fails")
    group.addoption("--loss", action="append", default=[], metavar="NAME",
                    help="test only this loss (a torch.nn.functional name); may be repeated")
    group.addoption("--dtype", action="append", default=[], metavar="DTYPE",
                    help="test only this dtype (float64, float32, float16, bfloat16); may be "
                         "repeated")
    group.addoption("--device", choices=("cpu", "cuda"), default=None,
                    help="run every candidate on this device (default: the alias's own, else "
                         "cpu); without it the candidate's tests are skipped")
    group.addoption("--require-device", action="store_true",
                    help="fail, rather than skip, when a candidate's device is not available")
    group.addoption("--isolation", choices=("process", "none"), default="process",
                    help="process (default): call each candidate in a worker process, so that "
                         "a crash or a hang is recorded and the run goes on; none: in the test "
                         "process (for debuggers)")
    group.addoption("--check-timeout", type=float, default=None, metavar="SECONDS",
                    help="time one call of a candidate may take before it counts as hung "
                         "(default 60; needs --isolation=process)")
    group.addoption("--worker-memory", type=float, default=None, metavar="GIB",
                    help="replace a candidate's worker process once its memory passes this "
                         "(default: half the machine's memory shared among the candidates' "
                         "workers, at least 2)")
    group.addoption("--threads", type=int, default=1, metavar="N",
                    help="torch threads for the candidates' calls (default 1; --speed has its "
                         "own --speed-threads)")
    group.addoption("--prefetch", choices=("auto", "on", "off"), default="auto",
                    help="on: a process of its own draws the random cases and computes the "
                         "references ahead of need, at a lower priority; off: the test process "
                         "does all of it; auto (default): on where the machine has a core beyond "
                         "one per test process (same verdicts either way)")
    group.addoption("--maxfail-per-candidate", type=int, default=None, metavar="N",
                    help="skip a candidate's remaining tests once N of its tests have failed "
                         "(the other candidates go on; pytest's -x/--maxfail stop them all)")
    group.addoption("--repeat", type=int, default=1, metavar="N",
                    help="call the candidate N times on each case and report run-to-run "
                         "differences (nondeterminism) apart from errors (default 1)")
    group.addoption("--shard", metavar="K/N",
                    help="run only the K-th of N disjoint parts of the selected tests, one part "
                         "per machine; merge their reports with python -m conformance.report "
                         "merge (docs/sharding.md)")
    group.addoption("--shard-durations", metavar="FILE",
                    help="balance the --shard parts by the test durations in FILE: a "
                         "summary.json of an earlier run or a pytest-split .test_durations file "
                         "(default: by count)")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Point a bare ``conformance`` argument at the installed suite when it is not a path here."""
    for index, arg in enumerate(args):
        head, sep, rest = arg.partition("::")
        parts = Path(head).parts
        if parts and parts[0] == "conformance" and not Path(head).exists():
            args[index] = str(PACKAGE_DIR.joinpath(*parts[1:])) + sep + rest


def pytest_ignore_collect(collection_path, config):
    """The speed test is collected only with --speed."""
    if collection_path == PACKAGE_DIR / "test_speed.py" and not config.getoption("--speed"):
        return True
    return None


_RUN_KEY = pytest.StashKey[ConformanceRun]()
_LLM_ORDER_KEY = pytest.StashKey[int]()


def _validate(config):
    from .specs import SPECS

    unknown = [n for n in config.getoption("--loss") if n not in SPECS]
    if unknown:
        raise pytest.UsageError(f"--loss={unknown[0]}: unknown loss; use one of "
                                f"{', '.join(SPECS)}")
    unknown = [d for d in config.getoption("--dtype") if d not in DTYPES]
    if unknown:
        raise pytest.UsageError(f"--dtype={unknown[0]}: unknown dtype; use one of "
                                f"{', '.join(DTYPES)}")
    for option, least in (("--repeat", 1), ("--threads", 1), ("--check-timeout", 0),
                          ("--worker-memory", 0), ("--maxfail-per-candidate", 1),
                          ("--speed-budget", 0)):
        value = config.getoption(option)
        if value is not None and (value < least or (least == 0 and value == 0)):
            raise pytest.UsageError(f"{option}={value:g}: give a number "
                                    + ("of 1 or more" if least else "above 0"))
    unknown = [d for d in config.getoption("--require-dtype") if d not in DTYPES + ("all",)]
    if unknown:
        raise pytest.UsageError(f"--require-dtype={unknown[0]}: unknown dtype; use one of "
                                f"{', '.join(DTYPES)} or all")
    unknown = [d for d in config.getoption("--speed-dtype") if d not in DTYPES]
    if unknown:
        raise pytest.UsageError(f"--speed-dtype={unknown[0]}: unknown dtype; use one of "
                                f"{', '.join(DTYPES)}")
    speed_rungs(config)  # a usage error for an unknown rung
    threads = config.getoption("--speed-threads")
    if threads is not None and threads < 1:
        raise pytest.UsageError(f"--speed-threads={threads}: give a thread count of 1 or more")
    if config.getoption("--update-baseline") and not config.getoption("--baseline"):
        raise pytest.UsageError("--update-baseline needs --baseline FILE: the file to write")


def _check_llm_losses(config, run) -> None:
    """Under --profile=llm (and no --speed), a usage error for a --loss without a
    language-model tier, and where no candidate has a loss with one: the run would test
    nothing of it."""
    if run.profile != "llm" or config.getoption("--speed"):
        return
    from .specs import SPECS

    tiered = [name for name, spec in SPECS.items() if spec.llm is not None]
    untiered = [name for name in config.getoption("--loss") if name not in tiered]
    if untiered:
        raise pytest.UsageError(f"--loss={untiered[0]}: no language-model tier (--profile=llm "
                                f"covers {', '.join(tiered)}); leave it out, or use another "
                                "profile")
    if not any(name in c.functions for c in run.candidates for name in tiered):
        labels = ", ".join(c.label for c in run.candidates)
        raise pytest.UsageError(f"--profile=llm: {labels} has none of the losses with a "
                                f"language-model tier ({', '.join(tiered)})")


def _targets_conformance(config) -> bool:
    """Whether this run collects the conformance tests (not only the suite's own tests/)."""
    if config.getoption("--impl"):
        return True
    for arg in config.args:
        path = Path(arg.partition("::")[0]).resolve()
        if path == PACKAGE_DIR or PACKAGE_DIR in path.parents:
            return True
    return False


def pytest_configure(config):
    config.pluginmanager.import_plugin("conformance.sharding")
    # the candidates' workers and the prefetch process both start from the fork server
    if _targets_conformance(config) and (config.getoption("--isolation") == "process"
                                         or _prefetching(config)):
        from .isolation import start_worker_server

        start_worker_server()
    _validate(config)
    if not _targets_conformance(config):
        return
    run = conformance_run(config)  # report a bad --impl before collecting anything
    _check_llm_losses(config, run)
    # the references' temporaries reuse freed memory, without page faults (after the worker
    # server started: candidates' processes keep glibc's defaults)
    from .allocator import keep_freed_memory

    keep_freed_memory()
    from .prefetch import allow as allow_prefetching
    from .session import start_reporting

    allow_prefetching(_prefetching(config))
    start_reporting(config, run)


def _prefetching(config) -> bool:
    """Whether the run prefetches: --prefetch=on, or auto where a core is to spare."""
    choice = config.getoption("--prefetch")
    return choice == "on" or (choice == "auto" and _core_to_spare())


def _core_to_spare() -> bool:
    """Whether the machine has a core beyond one per test process (pytest-xdist's -n N
    starts N): a serial run on two cores has one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return cores >= 2 * int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def conformance_run(config) -> ConformanceRun:
    """The session's ConformanceRun, loading the candidates on first use."""
    if _RUN_KEY not in config.stash:
        from .candidates import CandidateError, load_candidates

        try:
            candidates = load_candidates(config.getoption("--impl") or ["torch"],
                                         config.getoption("--device"))
        except CandidateError as error:
            raise pytest.UsageError(str(error)) from None
        for candidate in candidates:
            if candidate.unavailable and config.getoption("--require-device"):
                raise pytest.UsageError(f"--impl={candidate.impl}: {candidate.unavailable} "
                                        f"(--require-device)")
        if config.getoption("--isolation") == "process":
            _isolate(config, candidates)
        else:
            from .worker import set_threads

            set_threads(config.getoption("--threads"))
        required = set(config.getoption("--require-dtype"))
        config.stash[_RUN_KEY] = ConformanceRun(
            candidates, config.getoption("--seed"), config.getoption("--profile"),
            config.getoption("--require-grad"),
            set(DTYPES) if "all" in required else required, config.getoption("--repeat"),
            tuple(config.getoption("--loss")), tuple(config.getoption("--dtype")),
            not config.getoption("--no-known-deviations"),
            config.getoption("--maxfail-per-candidate"))
    return config.stash[_RUN_KEY]


def _isolate(config, candidates):
    """Give each available candidate a worker process (started on its first call)."""
    from .isolation import DEFAULT_CHECK_TIMEOUT_S, IsolatedRunner, default_memory_limit

    timeout = config.getoption("--check-timeout") or DEFAULT_CHECK_TIMEOUT_S
    memory = config.getoption("--worker-memory")
    isolated = sum(1 for candidate in candidates if not candidate.unavailable)
    test_processes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))  # set by -n N
    limit = (int(memory * (1 << 30)) if memory
             else default_memory_limit(isolated * test_processes))
    for candidate in candidates:
        if not candidate.unavailable:
            candidate.runner = IsolatedRunner(candidate.impl, candidate.device, timeout, limit,
                                              config.getoption("--threads"))


def pytest_unconfigure(config):
    """Stop the candidates' worker processes and the prefetch process."""
    run = config.stash.get(_RUN_KEY, None)
    if run is not None:
        from .prefetch import allow as allow_prefetching

        allow_prefetching(False)
    for candidate in run.candidates if run else ():
        if candidate.runner is not None:
            candidate.runner.stop()


def _candidate_of(item):
    params = getattr(getattr(item, "callspec", None), "params", {})
    candidate = params.get("candidate")
    return candidate if hasattr(candidate, "label") else None


def pytest_runtest_setup(item):
    """Skip a candidate's test once the candidate has failed --maxfail-per-candidate tests."""
    run = item.config.stash.get(_RUN_KEY, None)
    candidate = _candidate_of(item)
    if run is None or candidate is None or run.maxfail_per_candidate is None:
        return
    failed = run.failed_tests.get(candidate.label, 0)
    if failed >= run.maxfail_per_candidate:
        pytest.skip(f"{candidate.label} already failed {failed} test(s) "
                    f"(--maxfail-per-candidate={run.maxfail_per_candidate})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Count each candidate's failed tests (for --maxfail-per-candidate)."""
    outcome = yield
    report = outcome.get_result()
    run = item.config.stash.get(_RUN_KEY, None)
    candidate = _candidate_of(item)
    if run is not None and candidate is not None and report.failed:
        run.failed_tests[candidate.label] = run.failed_tests.get(candidate.label, 0) + 1


def pytest_collection_finish(session):
    """Note which test functions run for which loss and variant group
    (``ConformanceRun.will_run``), and send what they will need to the prefetch process
    (``ahead.plan``; only what some selected test asks for)."""
    run = session.config.stash.get(_RUN_KEY, None)
    if run is not None:
        from .ahead import plan

        plan(run, session.items)


def pytest_collection_modifyitems(config, items):
    """Under --profile=llm, the tests of one tier case (value and gradient, every candidate)
    run one after another, so that the case, up to a gigabyte, is built once for them all
    (``ConformanceRun.edge_group`` keeps the last one built)."""
    if not _targets_conformance(config) or config.getoption("--profile") != "llm":
        return
    # the test functions the tier leaves no parameters (one placeholder item each) are not
    # part of it: deselected, not listed as skipped
    empty = [item for item in items
             if "candidate" in getattr(item, "fixturenames", ()) and _candidate_of(item) is None]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [item for item in items if item not in empty]
    first = {}
    for position, item in enumerate(items):
        params = getattr(item, "callspec", None) and item.callspec.params
        key = (params["spec"].name, params["variant"], params["edge"]) if (
            params and "edge" in params) else ("", position)
        first.setdefault(key, position)
        item.stash[_LLM_ORDER_KEY] = first[key]
    items.sort(key=lambda item: item.stash[_LLM_ORDER_KEY])  # stable: kinds keep their order


def pytest_report_header(config):
    if _RUN_KEY not in config.stash:
        return None
    import torch

    run = config.stash[_RUN_KEY]
    lines = [f"loss-conformance: seed {run.seed}, profile {run.profile} "
             f"({run.examples} random examples per check); torch {torch.__version__}, "
             f"numpy {np.__version__}"]
    lines += [f"  candidate {c.describe()}" for c in run.candidates]
    from .deviations import version_note
    note = version_note(torch.__version__, [c.impl for c in run.candidates])
    if note and run.known_deviations:
        lines.append(f"  known deviations: {note}")
    return lines + _reporting_lines(config)


def _reporting_lines(config) -> list:
    from .session import reporting

    state = reporting(config)
    if state is None:
        return []
    lines = [f"  report: {state.report_dir}/ (results appended as checks finish)"]
    if state.baseline_path:
        lines.append(f"  baseline: {state.baseline_path}"
                     + (" (will be updated)" if state.update_baseline else ""))
    if state.xfails:
        lines.append(f"  known failures: {len(state.xfails)} from {state.xfails_path}")
    if config.getoption("--speed") and getattr(config.option, "numprocesses", None):
        lines.append("  speed: timed beside other pytest-xdist workers, the figures are noisy; "
                     "time without -n")
    return lines


def pytest_generate_tests(metafunc):
    """Parametrize the conformance tests over candidates, specs, variants and cases."""
    names = set(metafunc.fixturenames)
    if "size" in names:
        _parametrize_speed(metafunc)
        return
    if "candidate" not in names or "spec" not in names:
        return
    from .specs import SPECS

    run = conformance_run(metafunc.config)
    params = []
    for candidate in run.candidates:
        marks = [pytest.mark.skip(reason=candidate.unavailable)] if candidate.unavailable else []
        for spec_name in candidate.functions:
            spec = SPECS[spec_name]
            if "gradient" in metafunc.function.__name__ and not spec.differentiable:
                continue
            if run.profile == "llm" and (metafunc.function.__name__ not in LLM_TESTS
                                         or spec.llm is None):
                continue
            if run.losses and spec_name not in run.losses:
                continue
            for item, item_id in _items(metafunc, spec, run):
                dtype = getattr(item[0], "dtype", getattr(getattr(item[0], "case", None),
                                                           "dtype", None))
                if run.dtypes and dtype not in run.dtypes:
                    continue
                params.append(pytest.param(candidate, spec, *item, marks=marks,
                                           id=f"{candidate.label}-{spec.name}-{item_id}"))
    argnames = ["candidate", "spec"] + [n for n in ("variant", "edge", "invalid", "prop")
                                        if n in names]
    metafunc.parametrize(argnames, params)


SPEED_DTYPES = ("float32", "bfloat16")  # --speed-dtype's default


def speed_rungs(config) -> tuple:
    """The ladder rungs --speed-sizes names (default: every rung but 'huge'); UsageError for
    a name that is not a rung."""
    from .specs import DEFAULT_RUNGS, RUNGS

    given = config.getoption("--speed-sizes")
    if not given:
        return DEFAULT_RUNGS
    names = [n.strip() for n in given.split(",") if n.strip()]
    if names == ["all"]:
        return RUNGS
    unknown = [n for n in names if n not in RUNGS] or ([] if names else [""])
    if unknown:
        raise pytest.UsageError(f"--speed-sizes={given}: unknown rung {unknown[0]!r}; use some "
                                f"of {', '.join(RUNGS)} (comma-separated) or all")
    return tuple(names)


def _parametrize_speed(metafunc):
    """test_speed: one test per timed loss, dtype, size (rung) and, at the variant rung in the
    first --speed-dtype, option variant; every candidate inside it."""
    from .specs import SPECS, VARIANT_RUNG

    run = conformance_run(metafunc.config)
    dtypes = metafunc.config.getoption("--speed-dtype") or list(SPEED_DTYPES)
    rungs = speed_rungs(metafunc.config)
    params, ids = [], []
    for spec in SPECS.values():
        if spec.speed is None or not any(spec.name in c.functions for c in run.candidates):
            continue
        if run.losses and spec.name not in run.losses:
            continue
        for dtype in spec.speed.dtypes or dtypes:
            for rung, size in spec.speed.rung_sizes(rungs):
                variants = ["typical"] + [name for name, _ in spec.speed.variants
                                          if rung == VARIANT_RUNG and dtype == dtypes[0]]
                for variant in variants:
                    params.append((spec, dtype, size, rung, variant))
                    ids.append(f"{spec.name}-{dtype}-{'x'.join(map(str, size))}"
                               + ("" if variant == "typical" else f"-{variant}"))
    metafunc.parametrize(["spec", "speed_dtype", "size", "rung", "variant"], params, ids=ids)


def _items(metafunc, spec, run):
    """The per-spec parameters of a test: variant groups, (group, edge case id), (group,
    property) or invalid calls."""
    names = set(metafunc.fixturenames)
    if "prop" in names:  # test_property: one test per dtype and property of the loss
        from .properties import properties_of

        return [((group, prop), f"{group.id}-{prop.name}")
                for group in _variant_groups(spec) for prop in properties_of(spec)]
    if "invalid" in names:
        return [((call,), call.id) for call in spec.invalid_calls()]
    if "edge" in names:
        return [((group, edge), f"{group.id}-{edge}")
                for group in _variant_groups(spec) for edge in run.edge_ids(spec, group)]
    return [((group,), group.id) for group in _variant_groups(spec)]


def _variant_groups(spec) -> tuple:
    """One test per dtype: its reductions (and other variant options) are drawn inside it."""
    from .specs import group_variants

    return group_variants(spec.variants)


@pytest.fixture(scope="session")
def conformance(request) -> ConformanceRun:
    """The session's ConformanceRun (settings and candidates)."""
    return conformance_run(request.config)
