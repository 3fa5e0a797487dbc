"""The embedding family's tolerance where torch's intermediates round beyond the usual: float16
intermediates that underflow, and a p-norm's root taken with 1/p rounded."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.accuracy import compare
from conformance.cases import Case
from conformance.specs import SPECS
from conformance.specs.embedding import _cosine_later
from conformance.specs.embedding_cases import Distance
from loss_reference.formats import FORMATS

torch = pytest.importorskip("torch")

# quick profile seed 32's row: an anchor of norm 7e-4, a positive whose third component over
# its norm (5e-6) is a float16 subnormal
ANCHOR = [-0.0, -0.0006918907165527344, -0.0, 0.0001633167266845703, 0.00015151500701904297]
POSITIVE = [-127.4375, -35.75, -0.0006570816040039062, -0.0, -3.516674041748047e-06]
NEGATIVE = [1.1920928955078125e-07, -29.171875, 0.0, -0.2496337890625, -5.364418029785156e-07]
UPSTREAM = 0.18359375


def _cosine(x, y):
    return 1 - torch.nn.functional.cosine_similarity(x, y)


def test_torch_float16_cosine_distance_gradient_with_an_underflowing_intermediate_conforms():
    """torch's float16 backward computes g p_j / |p| = 9e-7 (15 subnormal units) and divides
    it by |a| = 7e-4: 1.7 % from the exact gradient element (1.3 times what the tolerance
    allowed before the spec counted that amplification). Its float64 gradient is the exact
    one, so the reference is right and the error is float16's."""
    spec = SPECS["triplet_margin_with_distance_loss"]
    args = {name: np.array([values]) for name, values in
            (("anchor", ANCHOR), ("positive", POSITIVE), ("negative", NEGATIVE))}
    options = {"reduction": "sum", "margin": 1.0, "swap": True,
               "distance_function": Distance("cosine")}
    case = Case("float16", args, options, grad_output=np.array(UPSTREAM))
    grads = {}
    for dtype in (torch.float16, torch.float64):
        tensors = {name: torch.tensor(value, dtype=dtype, requires_grad=True)
                   for name, value in args.items()}
        loss = torch.nn.functional.triplet_margin_with_distance_loss(
            tensors["anchor"], tensors["positive"], tensors["negative"],
            distance_function=_cosine, margin=1.0, swap=True, reduction="sum")
        loss.backward(torch.tensor(UPSTREAM, dtype=dtype))
        grads[dtype] = tensors["anchor"].grad.double().numpy()
    reference = spec.reference_grad(case)["anchor"]
    np.testing.assert_allclose(grads[torch.float64], reference.exact.astype(np.float64),
                               rtol=1e-12)
    verdict = compare(grads[torch.float16], reference, spec.grad_magnitudes(case)["anchor"],
                      FORMATS["float16"])
    assert verdict.passed, verdict


def test_the_amplification_applies_only_where_a_normalised_component_underflows():
    """1 (as for the other distances) wherever x_j / |x| and g x_j / |x| are normal or zero;
    1 + 1 / |u| + 1 / |v| where one of them is a float16 subnormal."""
    fmt = FORMATS["float16"]
    u = np.array([[3.0, -4.0, 0.0], [3.0, -4.0, 0.0]])
    v = np.array([[1.0, 2.0, 2.0], [1.0, 2.0, 2.0e-5]])
    g = np.array([[1.0], [1.0]])
    later = _cosine_later(u, v, g, fmt)
    assert np.array_equal(later[0], [1.0, 1.0, 1.0])
    amplified = 1 + 1 / 5 + 1 / np.sqrt(5 + 4e-10)
    np.testing.assert_allclose(later[1], [1.0, 1.0, amplified])
    # a small upstream gradient makes a normal share's product with it underflow
    later = _cosine_later(u[:1], v[:1], np.array([[1e-5]]), fmt)
    np.testing.assert_allclose(later[0], np.full(3, 1 + 1 / 5 + 1 / 3))


def test_torch_p_norm_root_with_a_rounded_exponent_conforms():
    """Default profile seed 9: torch's float64 triplet_margin_loss with p = 3 and a distance of
    1e30 computes s^(1/3) with 1/3 rounded, which moves the root by ln(1e90) (1/3 - fl(1/3))
    = 34 u of it: 27 ulps, where the tolerance allowed 24.7 before the spec counted the
    exponent's rounding (|ln d| u_acc of d). Its gradients conform too."""
    spec = SPECS["triplet_margin_loss"]
    args = {"anchor": np.full((1, 6), 17.0), "positive": np.array([[17.0] * 5 + [1e30]]),
            "negative": np.full((1, 6), 17.0)}
    options = {"reduction": "sum", "margin": 1.0, "swap": False, "p": 3.0, "eps": 1e-06}
    case = Case("float64", args, options, grad_output=np.array(1.0))
    tensors = {name: torch.tensor(value, requires_grad=True) for name, value in args.items()}
    loss = torch.nn.functional.triplet_margin_loss(
        tensors["anchor"], tensors["positive"], tensors["negative"], margin=1.0, p=3.0,
        eps=1e-06, reduction="sum")
    reference = spec.reference(case)
    assert float(loss.detach()) != float(reference.rounded)  # torch errs here, by 27 ulps
    verdict = compare(loss.detach().numpy(), reference, spec.magnitude(case), FORMATS["float64"])
    assert verdict.passed, verdict
    loss.backward()
    references = spec.reference_grad(case)
    magnitudes = spec.grad_magnitudes(case)
    for name, tensor in tensors.items():
        verdict = compare(tensor.grad.numpy(), references[name], magnitudes[name],
                          FORMATS["float64"])
        assert verdict.passed, (name, verdict)


def test_cosine_distance_rows_stay_outside_its_eps_after_an_expanded_layout(monkeypatch):
    """Soak quick seed 350: an unbatched negative of norm 9 whose first element is 1.2e-38
    was drawn with the expanded layout, which repeats that element (norm 3e-38, inside
    F.cosine_similarity's eps, where torch's gradient is not its value's derivative). The
    rows' constraint now applies after the layouts, and keeps an expanded row expandable."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from conformance.specs import embedding_cases

    row = np.array([1.1754943508222875e-38, 5.0, -4.0, 7.0])
    monkeypatch.setattr(embedding_cases, "embedding_shape", lambda draw: ((4,), "unbatched"))
    monkeypatch.setattr(embedding_cases, "triplet_inputs",
                        lambda draw, shape, dtype: (row, 2 * row, 3 * row, "normal"))
    monkeypatch.setattr(embedding_cases, "DISTANCE_FUNCTIONS", (Distance("cosine"),))
    monkeypatch.setattr(embedding_cases, "layouts_for",
                        lambda names, shapes: st.just({n: "expanded" for n in names}))
    spec = SPECS["triplet_margin_with_distance_loss"]
    variant = next(v for v in spec.variants if v.dtype == "float64")

    @settings(max_examples=3, deadline=None, database=None)
    @given(st.data())
    def check(data):
        case = data.draw(spec.cases(variant))
        for name in ("anchor", "positive", "negative"):
            x = case.args[name]
            assert np.sqrt(np.sum(x * x)) >= 1e-4, (name, x)
            assert (x == x[0]).all(), (name, x)  # still one repeated element

    check()
