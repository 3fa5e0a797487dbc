"""Property checks: identities between two calls of the candidate (conformance/properties.py).

Each test id reads ``<candidate>-<loss>-<dtype>-<property>``; its ``variant`` parameter is the
dtype's VariantGroup and ``prop`` a ``properties.Property``. Cases are drawn with
hypothesis as in test_conformance.py, with a fifth of the random examples (at least 4): each
example calls the candidate twice, and the value checks already judge every case against the
reference.
"""

from __future__ import annotations

import pytest
from hypothesis import given, reject, seed
from hypothesis import strategies as st

from loss_reference.engine import EvaluationError

from . import prefetch as ahead_of_need
from .ahead import pairs_key
from .cases import drawing_settings
from .properties import check_property, property_cases, property_examples
from .recording import check_kind, recorder
from .test_conformance import explain, known_deviation, replay, skip_or_fail


@check_kind("property")
def test_property(conformance, candidate, spec, variant, prop, request):
    """Random cases: the candidate's results on a case and its transformed twin (or under two
    reductions) agree within both calls' tolerance. The pairs drawn by the first candidate (or
    ahead, by the prefetch process) are replayed for the others, as the random checks' cases
    are; a failure met on replay is drawn afresh for hypothesis to shrink."""
    skip_or_fail(conformance, candidate, spec, variant, gradient=False, request=request)
    key = pairs_key(spec, variant, prop, property_examples(conformance.examples))
    ahead_of_need.settle(key)
    drawn = conformance.drawn.lookup(key)
    failure = None
    if drawn is not None:
        def judge(pair):
            verdict = check_property(candidate, spec, pair, prop)
            return (getattr(verdict, "case", None) or pair.a, verdict,
                    not verdict.passed and _tolerated(conformance, candidate, spec, pair))

        failure = replay(judge, drawn, False, request, lambda case, verdict: explain(
            verdict, candidate, spec, case, request, conformance))
        if failure is None:
            return
    drawn = _draw(conformance, candidate, spec, variant, prop, request)
    if failure is not None:  # hypothesis did not meet the replayed pair again: report it
        case, verdict = failure
        recorder(request.node).judged(case, verdict)
        pytest.fail(explain(verdict, candidate, spec, case, request, conformance), pytrace=False)
    conformance.drawn.store(key, drawn)


def _tolerated(conformance, candidate, spec, pair) -> bool:
    """A documented deviation in one of the pair's two calls."""
    return any(known_deviation(conformance, candidate, spec, c, "value") for c in (pair.a, pair.b))


def _draw(conformance, candidate, spec, variant, prop, request) -> list:
    """Hypothesis draws the pairs and judges each, shrinking a failure to a minimal pair;
    returns the pairs it drew, in order."""
    faults = []  # the first crash or hang: reported as it happened, never shrunk
    drawn = []

    @seed(conformance.seed)
    @drawing_settings(property_examples(conformance.examples), conformance.shrink)
    @given(case=property_cases(spec, variant, prop), data=st.data())
    def random_pair(case, data):
        if faults:
            return
        pair = prop.transform(case, data.draw)
        if pair is None:
            reject()  # the property does not apply to this case
        drawn.append(pair)
        try:
            verdict = check_property(candidate, spec, pair, prop)
        except EvaluationError:
            reject()  # the reference cannot certify a tolerance here: judge another pair
        judged = getattr(verdict, "case", None) or pair.a
        if verdict.fault in ("crash", "hang"):
            recorder(request.node).judged(judged, verdict)
            faults.append(explain(verdict, candidate, spec, judged, request, conformance))
            return
        tolerated = not verdict.passed and _tolerated(conformance, candidate, spec, pair)
        recorder(request.node).judged(judged, verdict, gradient=False, tolerated=tolerated)
        if tolerated:
            return
        assert verdict.passed, explain(verdict, candidate, spec, judged, request, conformance)

    random_pair()
    if faults:
        pytest.fail(faults[0], pytrace=False)
    return drawn
