"""JAX as a candidate framework: the adapter (conformance/frameworks/jax_adapter.py) and the
optax example (examples/optax_losses.py), the latter through the real command.

Skipped as a whole without jax and optax (``pip install -e '.[jax]'``). The outcomes asserted
for the example are the ones documented in examples/README.md ("optax (JAX)"): where optax
conforms the run passes, and each documented deviation is flagged by the check that finds it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_conformance

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
pytest.importorskip("optax")

from conformance.candidates import load_candidate  # noqa: E402
from conformance.frameworks import (  # noqa: E402
    DtypeRefused, ForwardOnly, WrongOutput, framework_named)
from conformance.specs import SPECS  # noqa: E402
from loss_reference.formats import DTYPES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "optax_losses.py"


# --- the adapter ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fw():
    return framework_named("jax")


def test_adapter_arrays_dtypes_and_x64(fw):
    assert fw.name == "jax" and fw.device == "cpu"
    assert jax.config.jax_enable_x64  # turned on by the adapter, so float64 is float64
    for dtype in DTYPES:
        native = fw.to_native(np.array([1.5, -2.0]), dtype, "sliced")
        assert isinstance(native, jax.Array) and native.dtype.name == dtype
        values, name = fw.read_output(native)
        assert name == dtype and values.dtype == np.float64
        np.testing.assert_array_equal(values, [1.5, -2.0])
    labels = fw.to_native(np.array([0, 2]), "float16")
    assert labels.dtype == jnp.int64
    assert fw.to_native(3, "float32") == 3  # non-arrays pass as they are
    # every layout is the contiguous array; arrays are immutable
    assert fw.unchanged(native, fw.snapshot(native))


def test_adapter_read_output_wants_a_jax_array(fw):
    with pytest.raises(WrongOutput, match="expected a jax.Array"):
        fw.read_output(np.zeros(2))
    with pytest.raises(WrongOutput):
        fw.read_output(1.0)


def test_adapter_gradients_by_vjp(fw):
    """jax.vjp of the function w.r.t. positional and keyword arrays, the upstream gradient as
    cotangent, the other arguments held fixed."""

    def loss(input, target, weight=None, reduction="none"):
        out = weight * (input - target) ** 2
        return out if reduction == "none" else out.sum()

    x = fw.to_native(np.array([1.0, 2.0, 4.0]), "float32")
    t = fw.to_native(np.array([0.5, 2.0, 1.0]), "float32")
    w = fw.to_native(np.array([1.0, 3.0, -2.0]), "float32")
    args, kwargs = [x, t], {"weight": w, "reduction": "none"}
    output = loss(*args, **kwargs)
    upstream = np.array([1.0, -1.0, 0.5])
    grads = fw.gradients(output, {"input": x, "target": t, "weight": w}, upstream, "float32",
                         args=args, kwargs=kwargs, function=loss)
    r = np.array([0.5, 0.0, 3.0])
    wv = np.array([1.0, 3.0, -2.0])
    np.testing.assert_allclose(grads["input"][0], upstream * 2 * wv * r)
    np.testing.assert_allclose(grads["target"][0], -upstream * 2 * wv * r)
    np.testing.assert_allclose(grads["weight"][0], upstream * r ** 2)
    assert {g[1] for g in grads.values()} == {"float32"}
    # a scalar output, float64 kept (x64); the weight, not differentiated here, held fixed
    x64 = fw.to_native(np.array([1.0, 3.0]), "float64")
    t64 = fw.to_native(np.array([0.0, 1.0]), "float64")
    w64 = fw.to_native(np.array([1.0, 3.0]), "float64")
    out = loss(x64, t64, weight=w64, reduction="sum")
    grads = fw.gradients(out, {"input": x64}, np.float64(2.0), "float64", args=[x64, t64],
                         kwargs={"weight": w64, "reduction": "sum"}, function=loss)
    np.testing.assert_array_equal(grads["input"][0], [4.0, 24.0])  # 2 g w (x - t)
    assert grads["input"][1] == "float64"
    with pytest.raises(WrongOutput, match="shape"):
        fw.gradients(out, {"input": x64}, np.ones(2), "float64", args=[x64, t64],
                     kwargs={"weight": w64, "reduction": "sum"}, function=loss)
    with pytest.raises(ForwardOnly):
        fw.gradients(out, {"input": x64}, np.float64(1.0), "float64", args=[x64, t64])


def test_adapter_refusal(fw):
    assert isinstance(fw.refusal(NotImplementedError("no float16 kernel")), DtypeRefused)
    assert fw.refusal(ValueError("bad")) is None


def test_candidate_passes_the_function_to_jax_gradients(tmp_path):
    """Candidate.call_here hands jax's adapter the function (torch and numpy get no new
    argument); the gradient reaches a keyword array too."""
    module = tmp_path / "jax_mse.py"
    module.write_text(
        "import jax.numpy as jnp\nFRAMEWORK = 'jax'\n\n"
        "def mse_loss(input, target, size_average=None, reduce=None, reduction='mean',\n"
        "             weight=None):\n"
        "    t = (input - target) ** 2 * (1 if weight is None else weight)\n"
        "    return t if reduction == 'none' else t.sum() if reduction == 'sum' else t.mean()\n")
    candidate = load_candidate(str(module))
    assert candidate.framework.name == "jax" and "jax" in candidate.describe()
    spec = SPECS["mse_loss"]
    from conformance.cases import Case

    case = Case("float64", {"input": np.array([1.0, 2.0]), "target": np.array([0.0, 0.0]),
                            "weight": np.array([2.0, 1.0])}, {"reduction": "sum"},
                grad_output=np.float64(1.0))
    call = candidate.call_here(spec, case, with_grad=True)
    assert call.dtype == "float64" and call.value == 6.0 and call.modified == []
    np.testing.assert_allclose(call.grads["input"][0], [4.0, 4.0])
    np.testing.assert_allclose(call.grads["target"][0], [-4.0, -4.0])
    np.testing.assert_allclose(call.grads["weight"][0], [1.0, 4.0])


# --- the optax example, through the real command ------------------------------------------------

def _run(tmp_path, *selection):
    return run_conformance(tmp_path, "conformance", f"--impl={EXAMPLE}", "--profile=quick",
                           "-q", "--no-report", *selection)


def test_example_loads_with_its_functions():
    candidate = load_candidate(str(EXAMPLE))
    assert candidate.framework.name == "jax"
    assert {"mse_loss", "huber_loss", "binary_cross_entropy_with_logits", "cross_entropy",
            "kl_div", "multilabel_soft_margin_loss"} <= set(candidate.functions)
    assert "l1_loss" in candidate.missing  # optax has no l1 loss


def test_example_conforms_where_optax_does(tmp_path):
    """Values of mse_loss and huber_loss (every reduction, random and edge cases) and the
    invalid calls: optax conforms there (examples/README.md)."""
    run = _run(tmp_path, "--loss", "mse_loss", "--loss", "huber_loss", "--dtype", "float32",
               "-k", "test_value or test_edge_value or test_rejects_invalid")
    assert run.returncode == 0, run
    assert " passed" in run.stdout and "failed" not in run.stdout


def test_example_deviations_are_flagged(tmp_path):
    """The documented deviations: XLA's CPU flush of subnormals to zero (a subnormal input, and
    a subnormal result), and optax.huber_loss's gradient for residuals far below delta."""
    run = _run(tmp_path, "--loss", "huber_loss", "--loss", "soft_margin_loss",
               "--dtype", "float32", "-k",
               "(test_edge_gradient and huber_loss-float32-tiny-residuals) or "
               "(test_edge_gradient and huber_loss-float32-subnormal) or "
               "(test_edge_value and soft_margin_loss-float32-saturated-agree)")
    output = str(run)
    assert run.returncode == 1, output
    assert "3 failed" in run.stdout, output
    failures = [line for line in run.stdout.splitlines() if "error exceeds the tolerance" in line]
    # flush to zero: the candidate gives 0 where the exact result is subnormal
    assert any("grad[input]" in line and "candidate 0.0" in line for line in failures), output
    assert any("output:" in line and "candidate 0.0, exact 3.0066" in line
               for line in failures), output
    # optax.huber_loss's gradient: an absolute error of about ulp(delta) / 2 (reduction none)
    assert any("grad[input]" in line and "candidate -2.38418" in line
               for line in failures), output


def test_failures_leave_repro_scripts_that_run_on_jax(tmp_path):
    """A value and a gradient failure of the example each leave a standalone script that calls
    optax the same way (x64 on, jax.vjp for the gradient) and exits 1 while the failure is
    there."""
    run = run_conformance(
        tmp_path, "conformance", f"--impl={EXAMPLE}", "--profile=quick", "-q", "--report-dir=out",
        "--loss", "huber_loss", "--loss", "soft_margin_loss", "--dtype", "float32", "-k",
        "(test_edge_gradient and huber_loss-float32-tiny-residuals) or "
        "(test_edge_value and soft_margin_loss-float32-saturated-agree)")
    assert run.returncode == 1, run
    failures = run.summary()["failures"]
    assert len(failures) == 2 and all(f["repro"] for f in failures), failures
    for failure in failures:
        script = tmp_path / "out" / failure["repro"]
        done = subprocess.run([sys.executable, "-I", str(script)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        expected = "grad[input]" if failure["loss"] == "huber_loss" else "output"
        assert done.returncode == 1, done.stdout + done.stderr
        assert expected in done.stdout and "exact" in done.stdout, done.stdout + done.stderr


def test_speed_times_a_jax_candidate_forward_and_backward(tmp_path):
    """--speed times the example beside torch: forward (waiting for jax's asynchronous
    result) and forward+backward (jax.vjp and its pullback)."""
    run = run_conformance(tmp_path, "conformance", f"--impl={EXAMPLE}", "--impl=torch", "--speed",
                          "-q", "--report-dir=out",
                          "-k", "test_speed and multilabel_soft_margin_loss and 64x10")
    assert run.returncode == 0, run
    rows = run.summary()["speed"]
    timed = {(r["candidate"], r["pass"]) for r in rows if r.get("median_s")}
    assert {("optax_losses", "forward"), ("optax_losses", "forward+backward")} <= timed, rows
