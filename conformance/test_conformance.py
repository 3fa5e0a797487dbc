"""The conformance tests: generic over specs and candidates (parametrized by the plugin).

Each test id reads ``<candidate>-<loss>-<dtype>-<options>[-<edge case>]``. Random checks draw
Cases with hypothesis, which shrinks a failure to a minimal Case and prints it; every failure
message ends with a command line that reruns exactly that test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings

from .checks import check_gradient, check_invalid, check_value, probe
from .deviations import known_deviation


def _skip_or_fail(conformance, candidate, spec, variant, gradient: bool):
    """Skip a variant the candidate declines (dtype, gradients) unless the user requires it."""
    edges = spec.edge_cases(variant, np.random.default_rng(conformance.seed))
    reason = probe(candidate, spec, variant, edges, want_grad=gradient)
    if reason is None:
        return
    required = (reason.startswith("forward-only") and conformance.require_grad) or (
        reason.startswith("unsupported dtype") and variant.dtype in conformance.required_dtypes)
    if required:
        pytest.fail(f"{reason} (required by the command line)", pytrace=False)
    pytest.skip(reason)


def _explain(verdict, candidate, spec, case, request, conformance) -> str:
    return (f"{spec.name} on {candidate.label} does not conform:\n"
            f"  {verdict.message}\n"
            f"  case: {case.describe()}\n"
            f"  reproduce: {conformance.repro(request.node.nodeid)}")


def _run_random(check, conformance, candidate, spec, variant, request):
    @seed(conformance.seed)
    @settings(max_examples=conformance.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=spec.cases(variant))
    def random_case(case):
        verdict = check(candidate, spec, case)
        if not verdict.passed and known_deviation(candidate, spec, case):
            return  # documented in deviations.py; every other case still counts
        assert verdict.passed, _explain(verdict, candidate, spec, case, request, conformance)

    random_case()


def test_value(conformance, candidate, spec, variant, request):
    """Random cases: output shape, dtype, NaN/inf pattern and accuracy; inputs unmodified."""
    _skip_or_fail(conformance, candidate, spec, variant, gradient=False)
    _run_random(check_value, conformance, candidate, spec, variant, request)


def test_gradient(conformance, candidate, spec, variant, request):
    """Random cases: gradient of every differentiable argument under a random upstream."""
    _skip_or_fail(conformance, candidate, spec, variant, gradient=True)
    _run_random(check_gradient, conformance, candidate, spec, variant, request)


def _run_edge(check, candidate, spec, case, request, conformance):
    verdict = check(candidate, spec, case)
    if not verdict.passed:
        reason = known_deviation(candidate, spec, case)
        if reason:
            pytest.xfail(f"known deviation: {reason}")
    assert verdict.passed, _explain(verdict, candidate, spec, case, request, conformance)


def test_edge_value(conformance, candidate, spec, variant, edge, request):
    """The fixed catalogue of edge cases: values."""
    _skip_or_fail(conformance, candidate, spec, variant, gradient=False)
    _run_edge(check_value, candidate, spec, edge[1], request, conformance)


def test_edge_gradient(conformance, candidate, spec, variant, edge, request):
    """The fixed catalogue of edge cases: gradients."""
    _skip_or_fail(conformance, candidate, spec, variant, gradient=True)
    _run_edge(check_gradient, candidate, spec, edge[1], request, conformance)


def test_rejects_invalid(conformance, candidate, spec, invalid, request):
    """Invalid calls must raise."""
    verdict = check_invalid(candidate, spec, invalid)
    assert verdict.passed, _explain(verdict, candidate, spec, invalid.case, request, conformance)
