"""Checks: run one Case on one Candidate, compare with the Reference, return a Verdict.

A value check verifies the output's shape and dtype against torch's contract, its NaN/inf
pattern and its error under the tolerance policy, and that no input was modified. A gradient
check does the same for the gradient of every differentiable argument, under the case's random
upstream gradient. An invalid-input check verifies that the call raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from loss_reference.formats import format_of

from .accuracy import allowed_error, compare
from .frameworks import DtypeRefused, ForwardOnly, WrongOutput


@dataclass
class Verdict:
    """The outcome of one check: passed or not, why, and the measurements behind it."""

    passed: bool
    message: str = ""
    # output name ("output", "grad[input]", ...) -> {"ulp": , "rel": , "ratio": } as measured
    measurements: dict = field(default_factory=dict)
    # for a failing output: name -> {"exact": array, "allowed": array} (for a repro file)
    evidence: dict = field(default_factory=dict)


def _raised(candidate, error: BaseException) -> str:
    return f"raised {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}"


def _call(candidate, spec, case, with_grad, options=None):
    """Call the candidate; a Verdict instead of the Call when it raised or misbehaved."""
    try:
        return candidate.call(spec, case, with_grad=with_grad, options=options), None
    except (ForwardOnly, DtypeRefused):
        raise
    except WrongOutput as error:
        return None, Verdict(False, f"wrong kind of output: {error}")
    except Exception as error:  # the candidate's own failure is the finding
        refusal = candidate.framework.refusal(error)
        if refusal is not None:
            raise refusal from error
        return None, Verdict(False, f"{_raised(candidate, error)} on a valid input")


def _expected_dtype(spec, case):
    return spec.output_dtype or case.dtype


def _judge(name, values, dtype, reference, magnitude, case) -> Verdict | None:
    """Shape, dtype and accuracy of one output array; None when it passes."""
    fmt = format_of(case.dtype)
    expected_shape = np.shape(reference.rounded)
    if values.shape != expected_shape:
        return Verdict(False, f"{name}: shape {values.shape}, expected {expected_shape}")
    if dtype != case.dtype:
        return Verdict(False, f"{name}: dtype {dtype}, expected {case.dtype}")
    result = compare(values, reference, magnitude, fmt)
    measurement = {name: {"ulp": result.max_ulp, "rel": result.max_rel,
                          "ratio": result.max_ratio}}
    if result.passed:
        return Verdict(True, "", measurement)
    evidence = {name: {"exact": reference.exact.astype(np.float64),
                       "allowed": allowed_error(reference, magnitude, fmt)}}
    index = result.worst_index
    where = f" at index {index}" if index else ""
    return Verdict(False, (
        f"{name}: {result.problem}{where}: candidate {result.worst_candidate!r}, exact "
        f"{result.worst_exact!r}, error {abs(result.worst_candidate - result.worst_exact):.3g} "
        f"({result.max_ulp:.3g} ulp), allowed {result.worst_allowed:.3g}"), measurement, evidence)


def check_value(candidate, spec, case, call_options: dict | None = None) -> Verdict:
    """Forward check: shape, dtype, exact or toleranced values, inputs unmodified.

    ``call_options``: spell the case's options differently in the call (legacy keywords).
    """
    call, failure = _call(candidate, spec, case, with_grad=False, options=call_options)
    if failure:
        return failure
    if call.modified:
        return Verdict(False, f"modified its input(s) in place: {', '.join(call.modified)}")
    if spec.exact:
        expected = spec.reference(case)
        if call.value.shape != expected.shape:
            return Verdict(False, f"output: shape {call.value.shape}, expected {expected.shape}")
        if not call.dtype.startswith(("float", "bfloat")):
            return Verdict(False, f"output: dtype {call.dtype}, expected a floating dtype")
        if not np.array_equal(call.value, expected):
            index = tuple(int(i) for i in np.argwhere(call.value != expected)[0])
            return Verdict(False, f"output: at index {index} candidate {call.value[index]!r}, "
                                  f"expected {expected[index]!r}",
                           evidence={"output": {"exact": expected,
                                                "allowed": np.zeros(expected.shape)}})
        return Verdict(True, "", {"output": {"ulp": 0.0, "rel": 0.0, "ratio": 0.0}})
    return _judge("output", call.value, call.dtype, spec.reference(case), spec.magnitude(case),
                  case) or Verdict(True)


def check_gradient(candidate, spec, case) -> Verdict:
    """Gradient check for every differentiable argument the case passes."""
    call, failure = _call(candidate, spec, case, with_grad=True)
    if failure:
        return failure
    if call.modified:
        return Verdict(False, f"modified its input(s) in place: {', '.join(call.modified)}")
    references = spec.reference_grad(case)
    magnitudes = spec.grad_magnitudes(case)
    measurements = {}
    for name, reference in references.items():
        got = call.grads.get(name)
        if got is None:
            return Verdict(False, f"grad[{name}]: no gradient reached {name}, but the loss is "
                                  f"differentiable in it")
        verdict = _judge(f"grad[{name}]", got[0], got[1], reference, magnitudes[name], case)
        if verdict and not verdict.passed:
            return verdict
        measurements.update(verdict.measurements if verdict else {})
    return Verdict(True, "", measurements)


def check_invalid(candidate, spec, call) -> Verdict:
    """The call must raise (any exception): accepting it silently is a finding."""
    try:
        output = candidate.call(spec, call.case)
    except Exception:
        return Verdict(True)
    shown = output.value if output.value is not None and output.value.size < 8 else "an array"
    return Verdict(False, f"accepted an invalid call ({call.reason}) and returned {shown}")


def probe(candidate, spec, variant, edge_cases, want_grad: bool):
    """Why a variant cannot be tested on this candidate (dtype refused, forward-only), or None.

    Uses the first edge case of the variant whose arrays are all non-empty as a representative.
    """
    nonempty = [case for _, case in edge_cases
                if all(len(v) > 0 if isinstance(v, list) else np.size(v) > 0
                       for v in case.args.values() if v is not None)]
    if not nonempty:
        return None
    case = nonempty[0]
    try:
        candidate.call(spec, case, with_grad=want_grad)
    except DtypeRefused as error:
        return f"unsupported dtype: {candidate.label} declines {variant.dtype} ({error})"
    except ForwardOnly as error:
        return f"forward-only: {error}"
    except Exception as error:
        refusal = candidate.framework.refusal(error)
        if refusal is not None:
            return f"unsupported dtype: {candidate.label} declines {variant.dtype} ({refusal})"
    return None
