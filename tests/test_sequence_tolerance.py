"""ctc_loss's gradient tolerance at a rare state: an occupancy far below 1, whose log-space
exponent any float64 implementation rounds by u times its own size."""

from __future__ import annotations

import numpy as np

from conformance.accuracy import compare, ulp_error
from conformance.builtin import numpy_sequence
from conformance.cases import Case
from conformance.specs import SPECS
from loss_reference.formats import FORMATS

# soak quick seed 130: the second sample's blank at frame 0 lies only on the path (blank, 0),
# of cost 3.7 + 300, beside the path (0, blank) of cost 0.002: occupancy 1.3e-132
LOG_PROBS = np.array([
    [[-3.1526229623676008e+00, -3.2095267138373549e+00],
     [-1.0207645274713067e-67, -3.6954424974156197e+00]],
    [[-1.1754943508222875e-38, -3.0666542151527175e-61],
     [-3.0000000000000000e+02, -2.0967902522851249e-03]]])
ARGS = {"log_probs": LOG_PROBS, "targets": np.zeros((2, 5), dtype=np.int64),
        "input_lengths": np.array([0, 2]), "target_lengths": np.array([3, 1])}
OPTIONS = {"blank": 1, "reduction": "sum", "zero_infinity": False}
UPSTREAM = -3.2775880700000000


def _judge(gradient, args):
    spec = SPECS["ctc_loss"]
    case = Case("float64", args, OPTIONS, grad_output=np.array(UPSTREAM))
    reference = spec.reference_grad(case)["log_probs"]
    verdict = compare(gradient, reference, spec.grad_magnitudes(case)["log_probs"],
                      FORMATS["float64"])
    return verdict, reference


def test_a_log_space_gradient_at_a_rare_state_conforms():
    """The numpy candidate's log-space recursions (as torch's: its gradient is excused for
    another reason, conformance/deviations/sequence.py) give the blank's occupancy
    exp(-303.69...): 114 ulps off, all of it the rounding of that exponent, where the
    tolerance without |log gamma| allowed 65. The state's own path cost is in it now."""
    got = numpy_sequence.ctc_loss_vjp(UPSTREAM, **ARGS, **OPTIONS)["log_probs"]
    verdict, reference = _judge(got, ARGS)
    ulps = ulp_error(got[0, 1, 1:], reference.exact[0, 1, 1:], FORMATS["float64"])
    assert ulps[0] > 100
    assert verdict.passed, verdict

