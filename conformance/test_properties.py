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

from .cases import drawing_settings
from .properties import check_property
from .recording import check_kind, recorder
from .test_conformance import explain, skip_or_fail, known_deviation


def _drawn_cases(spec, variant, prop):
    """Cases of the group's members whose reduction the property starts from (one strategy
    object per loss, group and property: hypothesis validates each new one on its first draw)."""
    key = (spec.name, variant, prop.name)
    if key not in _STRATEGIES:
        members = [v for v in variant.members if prop.reductions is None
                   or v.option_dict().get("reduction") in prop.reductions]
        _STRATEGIES[key] = st.one_of(*(spec.cases(v) for v in members))
    return _STRATEGIES[key]


_STRATEGIES = {}


@check_kind("property")
def test_property(conformance, candidate, spec, variant, prop, request):
    """Random cases: the candidate's results on a case and its transformed twin (or under two
    reductions) agree within both calls' tolerance."""
    skip_or_fail(conformance, candidate, spec, variant, gradient=False, request=request)
    faults = []  # the first crash or hang: reported as it happened, never shrunk

    @seed(conformance.seed)
    @drawing_settings(max(4, conformance.examples // 5), conformance.shrink)
    @given(case=_drawn_cases(spec, variant, prop), data=st.data())
    def random_pair(case, data):
        if faults:
            return
        pair = prop.transform(case, data.draw)
        if pair is None:
            reject()  # the property does not apply to this case
        try:
            verdict = check_property(candidate, spec, pair, prop)
        except EvaluationError:
            reject()  # the reference cannot certify a tolerance here: judge another pair
        judged = getattr(verdict, "case", None) or pair.a
        if verdict.fault in ("crash", "hang"):
            recorder(request.node).judged(judged, verdict)
            faults.append(explain(verdict, candidate, spec, judged, request, conformance))
            return
        tolerated = not verdict.passed and any(
            known_deviation(conformance, candidate, spec, c, "value") for c in (pair.a, pair.b))
        recorder(request.node).judged(judged, verdict, gradient=False, tolerated=tolerated)
        if tolerated:
            return  # a documented deviation in one of the two calls
        assert verdict.passed, explain(verdict, candidate, spec, judged, request, conformance)

    random_pair()
    if faults:
        pytest.fail(faults[0], pytrace=False)
