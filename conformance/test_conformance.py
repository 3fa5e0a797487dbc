"""The conformance tests: generic over specs and candidates (parametrized by the plugin).

Each test id reads ``<candidate>-<loss>-<dtype>[-<edge case>]``: one test per dtype, its
``variant`` parameter a ``VariantGroup`` of every reduction (and other variant options). Random
checks share the profile's examples out over the members and draw Cases with hypothesis, which
shrinks a failure to a minimal Case and prints it; an edge case runs under every member. The
first random check of a member draws its cases (unless the prefetch process drew them ahead:
``conformance.ahead``); its siblings (the gradient check beside the value check, the other
candidates) replay them, since drawing cost as much as judging, and a failure met on replay is
drawn afresh for hypothesis to shrink. Every failure message ends
with a command line that reruns exactly that test.
"""

from __future__ import annotations

import inspect

import pytest
from hypothesis import given, reject, seed

from loss_reference.engine import EvaluationError

from .cases import drawing_settings
from .checks import ProbeFault, check_gradient, check_invalid, check_value, probe
from .deviations import known_deviation as _listed_deviation
from . import prefetch as ahead_of_need
from .ahead import drawn_key, gradient_priority, member_share, prefetch_gradient
from .recording import check_kind, recorder


def skip_or_fail(conformance, candidate, spec, group, gradient: bool, request):
    """Skip a dtype the candidate declines (or gradients) unless the user requires it;
    fail at once if the candidate's process crashes or hangs on the probe. (Shared with
    test_properties.py.)"""
    variant = group.members[0]
    edges = conformance.catalogue(spec, variant)
    try:
        reason = conformance.probed(candidate, spec, variant, gradient,
                                    lambda: probe(candidate, spec, variant, edges, gradient))
    except ProbeFault as fault:
        recorder(request.node).judged(fault.case, fault.verdict, gradient=gradient)
        pytest.fail(explain(fault.verdict, candidate, spec, fault.case, request, conformance),
                    pytrace=False)
    if reason is None:
        return
    required = (reason.startswith("forward-only") and conformance.require_grad) or (
        reason.startswith("unsupported dtype") and variant.dtype in conformance.required_dtypes)
    if required:
        pytest.fail(f"{reason} (required by the command line)", pytrace=False)
    pytest.skip(reason)


def known_deviation(conformance, candidate, spec, case, check) -> str | None:
    """The listed deviation this case falls under in a check of kind ``check`` (a check
    function or "value"), unless --no-known-deviations."""
    if not conformance.known_deviations:
        return None
    kind = "gradient" if check is check_gradient else "value"
    return _listed_deviation(candidate, spec, case, kind)


def explain(verdict, candidate, spec, case, request, conformance) -> str:
    """A failure's message: who does not conform, the verdict, the case and the rerun line."""
    return (f"{spec.name} on {candidate.label} does not conform:\n"
            f"  {verdict.message}\n"
            f"  case: {case.describe()}\n"
            f"  reproduce: {conformance.repro(request.node.nodeid)}")


def _run_random(check, conformance, candidate, spec, group, request):
    """The profile's examples, shared out evenly over the group's members (every reduction
    gets its share, whatever hypothesis draws): a hypothesis run per member, in order."""
    share = member_share(conformance, group)
    gradients_ahead = check is check_value and conformance.will_run("test_gradient", spec, group)
    for variant in group.members:
        _run_member(check, conformance, candidate, spec, variant, share, request,
                    gradient_priority(conformance, spec, group) if gradients_ahead else None)


def _run_member(check, conformance, candidate, spec, variant, examples, request,
                gradients_ahead=None):
    """One member's random check: a replay of the cases a sibling check drew (the other
    kind of check, or another candidate) or the prefetch process drew ahead, when the run kept
    them, else hypothesis's own draw; a replayed failure is drawn afresh so that hypothesis
    shrinks it. ``gradients_ahead``: the priority at which to have the gradient references of
    the cases drawn here computed ahead (for the gradient check that will replay them), or
    None."""
    key = drawn_key(spec, variant, examples)
    ahead_of_need.settle(key)
    drawn = conformance.drawn.lookup(key)
    failure = None
    if drawn is not None:
        failure = _replay(check, conformance, candidate, spec, drawn, request)
        if failure is None:
            return
    drawn = _draw(check, conformance, candidate, spec, variant, examples, request,
                  gradients_ahead)
    if failure is not None:  # hypothesis did not meet the replayed case again: report it
        case, verdict = failure
        recorder(request.node).judged(case, verdict, gradient=check is check_gradient)
        pytest.fail(explain(verdict, candidate, spec, case, request, conformance), pytrace=False)
    conformance.drawn.store(key, drawn)


def _replay(check, conformance, candidate, spec, drawn, request):
    """Judge the drawn cases in order (see ``replay``)."""
    def judge(case):
        verdict = check(candidate, spec, case, repeat=conformance.repeat)
        tolerated = not verdict.passed and bool(
            known_deviation(conformance, candidate, spec, case, check))
        return case, verdict, tolerated

    return replay(judge, drawn, check is check_gradient, request,
                  lambda case, verdict: explain(verdict, candidate, spec, case, request,
                                                conformance))


def replay(judge, drawn, gradient: bool, request, explain_failure):
    """Judge the ``drawn`` items in order with ``judge(item)`` -> (the case judged, Verdict,
    whether a listed deviation tolerates it), skipping those the reference cannot certify
    (EvaluationError, as hypothesis's reject()); records them and returns None if every one
    passed or was tolerated, fails the test on a crash or a hang (``explain_failure(case,
    verdict)`` its message), and returns the first failure (case, verdict) unrecorded, for
    hypothesis to find and shrink. (Shared with test_properties.py.)"""
    judged = []
    for item in drawn:
        try:
            case, verdict, tolerated = judge(item)
        except EvaluationError:
            continue
        if not verdict.passed and not tolerated and verdict.fault not in ("crash", "hang"):
            return case, verdict
        judged.append((case, verdict, tolerated))
        if verdict.fault in ("crash", "hang"):
            break
    for case, verdict, tolerated in judged:
        recorder(request.node).judged(case, verdict, gradient=gradient, tolerated=tolerated)
    if judged and judged[-1][1].fault in ("crash", "hang"):
        case, verdict, _ = judged[-1]
        pytest.fail(explain_failure(case, verdict), pytrace=False)
    return None


def _draw(check, conformance, candidate, spec, variant, examples, request,
          gradients_ahead=None) -> list:
    """Hypothesis draws the member's cases and judges each, shrinking a failure to a minimal
    case; returns the cases it drew, in order."""
    faults = []  # the first crash or hang: reported as it happened, never shrunk
    drawn = []

    @seed(conformance.seed)
    @drawing_settings(examples, conformance.shrink)
    @given(case=spec.cases(variant))
    def random_case(case):
        if faults:
            return  # shrinking a crash or a hang would restart the worker at every step
        drawn.append(case)
        try:
            verdict = check(candidate, spec, case, repeat=conformance.repeat)
        except EvaluationError:
            reject()  # the reference cannot certify this case's rounding: judge another one
        if verdict.fault in ("crash", "hang"):
            recorder(request.node).judged(case, verdict, gradient=check is check_gradient)
            faults.append(explain(verdict, candidate, spec, case, request, conformance))
            return
        tolerated = not verdict.passed and bool(
            known_deviation(conformance, candidate, spec, case, check))
        recorder(request.node).judged(case, verdict, gradient=check is check_gradient,
                                      tolerated=tolerated)
        if gradients_ahead is not None and (verdict.passed or tolerated):
            prefetch_gradient(spec, case, gradients_ahead)
        if tolerated:
            return  # documented in conformance/deviations; every other case still counts
        assert verdict.passed, explain(verdict, candidate, spec, case, request, conformance)

    random_case()
    if faults:
        pytest.fail(faults[0], pytrace=False)
    return drawn


@check_kind("invalid")
def test_rejects_invalid(conformance, candidate, spec, invalid, request):
    """Invalid calls must raise."""
    verdict = check_invalid(candidate, spec, invalid)
    recorder(request.node).invalid(invalid, verdict)
    assert verdict.passed, explain(verdict, candidate, spec, invalid.case, request, conformance)


@check_kind("value")
def test_value(conformance, candidate, spec, variant, request):
    """Random cases: output shape, dtype, NaN/inf pattern and accuracy; inputs unmodified."""
    skip_or_fail(conformance, candidate, spec, variant, gradient=False,
                  request=request)
    _run_random(check_value, conformance, candidate, spec, variant, request)


@check_kind("gradient")
def test_gradient(conformance, candidate, spec, variant, request):
    """Random cases: gradient of every differentiable argument under a random upstream."""
    skip_or_fail(conformance, candidate, spec, variant, gradient=True,
                  request=request)
    _run_random(check_gradient, conformance, candidate, spec, variant, request)


def _run_edge(check, candidate, spec, cases, request, conformance):
    """Judge one edge case under each reduction: fail on the first unexcused failure, xfail
    when every failure is a known deviation, skip when the reference certifies none."""
    deviations, uncertified = [], []
    for case in cases:
        try:
            verdict = check(candidate, spec, case, repeat=conformance.repeat)
        except EvaluationError as error:
            uncertified.append(str(error))
            continue
        reason = (None if verdict.passed
                  else known_deviation(conformance, candidate, spec, case, check))
        recorder(request.node).judged(case, verdict, gradient=check is check_gradient,
                                      tolerated=bool(reason))
        if reason:
            deviations.append(reason)
            continue
        assert verdict.passed, explain(verdict, candidate, spec, case, request, conformance)
    if deviations:
        pytest.xfail(f"known deviation: {deviations[0]}")
    if len(uncertified) == len(cases):
        pytest.skip(f"the reference cannot certify this case: {uncertified[0]}")


@check_kind("edge value")
def test_edge_value(conformance, candidate, spec, variant, edge, request):
    """The fixed catalogue of edge cases: values."""
    skip_or_fail(conformance, candidate, spec, variant, gradient=False,
                  request=request)
    _run_edge(check_value, candidate, spec, conformance.edge_group(spec, variant, edge),
              request, conformance)


@check_kind("edge gradient")
def test_edge_gradient(conformance, candidate, spec, variant, edge, request):
    """The fixed catalogue of edge cases: gradients."""
    skip_or_fail(conformance, candidate, spec, variant, gradient=True,
                  request=request)
    _run_edge(check_gradient, candidate, spec, conformance.edge_group(spec, variant, edge),
              request, conformance)


# torch's deprecated spelling of each reduction; a candidate need not accept it, but one that
# does must give it torch's meaning.
LEGACY_REDUCTIONS = {"none": {"reduce": False}, "sum": {"size_average": False},
                     "mean": {"size_average": True, "reduce": True}}
LEGACY_EDGES = 6  # edge cases per reduction: enough to tell the keywords' meanings apart


@check_kind("legacy keywords")
@pytest.mark.filterwarnings("ignore:size_average and reduce args will be deprecated")
def test_legacy_keywords(conformance, candidate, spec, variant, request):
    """size_average / reduce, where the candidate accepts them, mean what they mean in torch."""
    members = [v for v in variant.members
               if v.option_dict().get("reduction") in LEGACY_REDUCTIONS]
    parameters = inspect.signature(candidate.functions[spec.name]).parameters
    if not members or not {"size_average", "reduce"} <= set(parameters):
        pytest.skip("no legacy size_average/reduce keywords to check")
    skip_or_fail(conformance, candidate, spec, variant, gradient=False,
                  request=request)
    for member, (_, case) in ((m, edge) for m in members
                              for edge in conformance.edge_cases(spec, m)[:LEGACY_EDGES]):
        options = {k: v for k, v in case.options.items() if k != "reduction"}
        options.update(LEGACY_REDUCTIONS[member.option_dict()["reduction"]])
        try:
            verdict = check_value(candidate, spec, case, call_options=options)
        except EvaluationError:
            continue
        tolerated = not verdict.passed and bool(
            known_deviation(conformance, candidate, spec, case, "value"))
        recorder(request.node).judged(case, verdict, tolerated=tolerated, call_options=options)
        if tolerated:
            continue
        assert verdict.passed, explain(verdict, candidate, spec, case, request, conformance)

