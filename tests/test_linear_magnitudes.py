"""linear_cross_entropy's tolerance magnitudes are computed a pass of tokens at a time, the
passes shared among the reference's threads (``conformance.specs.linear._passes``): however the
tokens are split, every row is written and every sum over the batch is whole."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.specs import SPECS
from conformance.specs import linear
from loss_reference import engine

SPEC = SPECS["linear_cross_entropy"]
# a class weight, a K-dimensional weight with positions, probability targets (the target's and
# the weight's gradients), smoothing, a bias
EDGES = ["n-equals-c", "k-dim-padding", "k-dim-probabilities", "one-hot-probabilities"]


def _edge(edge: str, reduction: str):
    variant = next(v for v in SPEC.variants
                   if v.dtype == "float32" and v.option_dict()["reduction"] == reduction)
    return dict(SPEC.edge_cases(variant, np.random.default_rng(0)))[edge]


def _magnitudes(case) -> dict:
    out = {"value": SPEC.magnitude(case)}
    out.update(SPEC.grad_magnitudes(case))
    return out


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("edge", EDGES)
def test_the_magnitudes_do_not_depend_on_the_passes(monkeypatch, edge, reduction):
    """One pass of every token on one thread, against a pass a token on two threads: the
    same scales (the sums over the batch in another order: within 1e-14)."""
    case = _edge(edge, reduction)
    monkeypatch.setattr(engine, "_threads", lambda: 1)
    monkeypatch.setattr(linear, "LOGITS_PER_PASS", 1 << 30)
    whole = _magnitudes(case)
    monkeypatch.setattr(engine, "_threads", lambda: 2)
    monkeypatch.setattr(linear, "LOGITS_PER_PASS", 1)
    split = _magnitudes(case)
    assert whole.keys() == split.keys() and len(whole) >= 3
    for name in whole:
        assert np.any(np.asarray(whole[name].scale) > 0), name
        np.testing.assert_allclose(split[name].scale, whole[name].scale, rtol=1e-14,
                                   err_msg=name)
