"""Checks: run one Case on one Candidate, compare with the Reference, return a Verdict.

A value check verifies the output's shape and dtype against torch's contract, its NaN/inf
pattern and its error under the tolerance policy, and that no input was modified. A gradient
check does the same for the gradient of every differentiable argument, under the case's random
upstream gradient. An invalid-input check verifies that the call raises.

A fault of the candidate's process (a crash or a hang, see conformance/isolation.py) fails the
check with ``Verdict.fault`` set. With ``repeat`` > 1 the candidate is called again on the same
case and any bitwise difference between the calls fails the check as "nondeterministic", apart
from its error against the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from loss_reference.formats import format_of

from .accuracy import allowed_error, compare
from .frameworks import DtypeRefused, ForwardOnly, WrongOutput
from .isolation import CandidateFault
from .references import gradient_reference, value_reference


@dataclass
class Verdict:
    """The outcome of one check: passed or not, why, and the measurements behind it."""

    passed: bool
    message: str = ""
    # output name ("output", "grad[input]", ...) -> {"ulp": , "rel": , "ratio": } as measured
    measurements: dict = field(default_factory=dict)
    # for a failing output: name -> {"exact": array, "allowed": array} (for a repro file)
    evidence: dict = field(default_factory=dict)
    fault: str | None = None  # "crash", "hang" or "nondeterministic"; None for other verdicts


def _raised(error: BaseException) -> str:
    name = getattr(error, "type_name", type(error).__name__)  # as raised in a worker
    text = str(error).strip()
    return f"raised {name}: {text.splitlines()[0] if text else ''}"


def _failure(candidate, error: Exception) -> Verdict:
    """The failing Verdict of a call that raised ``error`` (a refusal of the dtype is raised
    on: it skips the test rather than failing it).

    A dtype the candidate declines, or gradients it does not give, are found by the probe
    before the checks run (the test is then skipped); declining here, on one valid call of a
    dtype it accepted on the probe's, is a failure like any other exception on a valid input
    (e.g. a NotImplementedError for an option the candidate lacks)."""
    if isinstance(error, (ForwardOnly, DtypeRefused)):
        return Verdict(False, f"declined a valid call ({type(error).__name__}: "
                              f"{error}) in a dtype it accepts elsewhere")
    if isinstance(error, WrongOutput):
        return Verdict(False, f"wrong kind of output: {error}")
    if isinstance(error, CandidateFault):
        return Verdict(False, f"{error.kind}: {error}", fault=error.kind)
    refusal = candidate.framework.refusal(error)
    if refusal is not None:
        raise refusal from error
    return Verdict(False, f"{_raised(error)} on a valid input")


def _call(candidate, spec, case, with_grad, options=None):
    """Call the candidate; a Verdict instead of the Call when it raised or misbehaved."""
    try:
        return candidate.call(spec, case, with_grad=with_grad, options=options), None
    except Exception as error:  # the candidate's own failure is the finding
        return None, _failure(candidate, error)


def call_beside(reference, candidate, spec, case, with_grad, options=None):
    """``_call`` with ``reference()`` computed while the candidate computes (in its worker):
    (Call or None, failing Verdict or None, the reference's result).

    The candidate's findings come first: an exception of the reference (EvaluationError: the
    case is skipped) is raised only where the call succeeded and left its inputs unmodified,
    as when they ran in turn."""
    try:
        wait = candidate.start_call(spec, case, with_grad=with_grad, options=options)
    except Exception as error:
        return None, _failure(candidate, error), None
    try:
        expected, problem = reference(), None
    except Exception as error:  # raised below, once the candidate's answer is read
        expected, problem = None, error
    try:
        call, failure = wait(), None
    except Exception as error:
        call, failure = None, _failure(candidate, error)
    if problem is not None and failure is None and not call.modified:
        raise problem
    return call, failure, expected


def _same_bits(a, b) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def _repeated(candidate, spec, case, first, with_grad, options, repeat) -> Verdict | None:
    """Call ``repeat - 1`` more times; a failing Verdict at the first run-to-run difference."""
    outputs = {"output": first.value}
    outputs.update({f"grad[{n}]": g[0] for n, g in (first.grads or {}).items() if g})
    for run in range(2, repeat + 1):
        again, failure = _call(candidate, spec, case, with_grad, options)
        if failure:
            return failure
        others = {"output": again.value}
        others.update({f"grad[{n}]": g[0] for n, g in (again.grads or {}).items() if g})
        for name, values in outputs.items():
            other = others.get(name)
            if other is None or not _same_bits(values, other):
                where = ""
                if other is not None and values.shape == other.shape and values.size:
                    differs = ~((values == other) | (np.isnan(values) & np.isnan(other)))
                    index = tuple(int(i) for i in np.argwhere(differs)[0])
                    where = (f" at index {index}: {values[index]!r} in run 1, "
                             f"{other[index]!r} in run {run}")
                return Verdict(False, f"nondeterministic: {name} differs between run 1 and "
                                      f"run {run} on the same case{where}",
                               fault="nondeterministic")
    return None


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
    with np.errstate(over="ignore"):  # an exact value beyond float64's range: inf
        exact = reference.exact.astype(np.float64)
    evidence = {name: {"exact": exact, "allowed": allowed_error(reference, magnitude, fmt)}}
    index = result.worst_index
    where = f" at index {index}" if index else ""
    return Verdict(False, (
        f"{name}: {result.problem}{where}: candidate {result.worst_candidate!r}, exact "
        f"{result.worst_exact!r}, error {abs(result.worst_candidate - result.worst_exact):.3g} "
        f"({result.max_ulp:.3g} ulp), allowed {result.worst_allowed:.3g}"), measurement, evidence)


def check_value(candidate, spec, case, call_options: dict | None = None,
                repeat: int = 1) -> Verdict:
    """Forward check: shape, dtype, exact or toleranced values, inputs unmodified.

    ``call_options``: spell the case's options differently in the call (legacy keywords).
    ``repeat``: calls on the same case whose results must agree bit for bit.
    """
    call, failure, expected = call_beside(
        lambda: value_reference(spec, case), candidate, spec, case, False, call_options)
    if failure:
        return failure
    if call.modified:
        return Verdict(False, f"modified its input(s) in place: {', '.join(call.modified)}")
    reference, magnitude = expected
    if repeat > 1:
        failure = _repeated(candidate, spec, case, call, False, call_options, repeat)
        if failure:
            return failure
    if spec.exact:
        expected = reference
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
    return _judge("output", call.value, call.dtype, reference, magnitude, case) or Verdict(True)


def check_gradient(candidate, spec, case, repeat: int = 1) -> Verdict:
    """Gradient check for every differentiable argument the case passes."""
    call, failure, expected = call_beside(
        lambda: gradient_reference(spec, case), candidate, spec, case, True)
    if failure:
        return failure
    if call.modified:
        return Verdict(False, f"modified its input(s) in place: {', '.join(call.modified)}")
    references, magnitudes = expected
    if repeat > 1:
        failure = _repeated(candidate, spec, case, call, True, None, repeat)
        if failure:
            return failure
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
    except CandidateFault as error:
        return Verdict(False, f"{error.kind} on an invalid call ({call.reason}): {error}; "
                              f"a conforming candidate raises an exception", fault=error.kind)
    except Exception:
        return Verdict(True)
    shown = output.value if output.value is not None and output.value.size < 8 else "an array"
    return Verdict(False, f"accepted an invalid call ({call.reason}) and returned {shown}")


class ProbeFault(Exception):
    """The candidate's process crashed or hung while being probed: the test fails with it."""

    def __init__(self, case, verdict: Verdict):
        super().__init__(verdict.message)
        self.case = case
        self.verdict = verdict


def probe(candidate, spec, variant, edge_cases, want_grad: bool):
    """Why a variant cannot be tested on this candidate (dtype refused, forward-only), or None.

    Uses the first edge case of the variant whose arrays are all non-empty as a representative.
    A crash or a hang raises ProbeFault (testing on would only meet it again).
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
    except CandidateFault as error:
        raise ProbeFault(case, Verdict(False, f"{error.kind}: {error}", fault=error.kind)) from None
    except Exception as error:
        refusal = candidate.framework.refusal(error)
        if refusal is not None:
            return f"unsupported dtype: {candidate.label} declines {variant.dtype} ({refusal})"
    return None
