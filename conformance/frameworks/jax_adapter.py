"""The jax adapter: jax arrays on the CPU, gradients by ``jax.vjp`` of the candidate function.

A candidate module declares ``FRAMEWORK = "jax"``; its functions take and return ``jax.Array``
values (torch.nn.functional's names and signatures, as for every candidate).

- 64-bit: constructing the adapter turns on ``jax_enable_x64`` (jax's default is to demote
  every float64 array to float32 and int64 to int32). It is done once, before any array is
  made, so that float64 cases really are float64 and every dtype is tested under the same
  configuration, whatever order the tests run in. The candidate therefore runs with x64 on:
  Python scalars stay weakly typed, but an array it creates without a dtype (``jnp.zeros(n)``,
  ``jnp.asarray(0.5)``) is float64 and promotes a float32 computation; give dtypes explicitly.
- Arrays: floating values in the dtype under test (bfloat16 is ``ml_dtypes.bfloat16``, jax's
  own), integer values (class indices, lengths) as int64, on the CPU. Other values (ints, label
  lists) are passed as they are.
- Layouts: jax arrays have no strides (a jax array is a value; XLA picks its memory layout),
  so every case's layout (transposed, sliced, expanded) is given as the same contiguous array:
  the suite's layouts only matter for torch candidates.
- Inputs are immutable: snapshot/unchanged are trivially true.
- Gradients: ``jax.vjp`` of the candidate function with respect to the differentiable array
  arguments (the other arguments held fixed), with the case's upstream gradient, in the
  output's dtype, as the cotangent. jax needs the function for that, not its output:
  ``Candidate.call_here`` passes it to every adapter as ``function=``. The function is traced:
  Python control flow on the *values* of a differentiable argument raises
  ``ConcretizationTypeError`` there (reported as the call raising on a valid input); control flow on
  shapes, dtypes and non-differentiable arguments (integer targets, options) is fine. A gradient jax
  cannot form (e.g. through ``jax.pure_callback`` or ``jax.lax.stop_gradient`` everywhere) is a
  ForwardOnly or a zero.
- Dtypes: jax on the CPU implements all four; a candidate declines one by raising
  NotImplementedError, and an XLA ``UNIMPLEMENTED`` error counts as a refusal too.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from . import DtypeRefused, ForwardOnly, WrongOutput

DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16,
          "bfloat16": ml_dtypes.bfloat16}


def _jax():
    """jax, with 64-bit types enabled (before any array is created)."""
    import jax

    if not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    return jax


class JaxFramework:
    """Candidates that take and return jax arrays (module attribute FRAMEWORK = "jax")."""

    name = "jax"
    torch_threads = False  # XLA has threads of its own
    device = "cpu"

    def __init__(self):
        self._jax = _jax()
        self._cpu = self._jax.devices("cpu")[0]

    def version(self) -> str:
        return self._jax.__version__

    def warm_up(self):
        """Compile and differentiate something tiny: jax's first use loads XLA (seconds)."""
        jax = self._jax
        x = jax.device_put(np.ones(4, np.float32), self._cpu)
        out, pullback = jax.vjp(lambda v: (v * v).sum(), x)
        pullback(np.float32(1.0))[0].block_until_ready()
        jax.jit(lambda v: v + 1)(x).block_until_ready()

    def to_native(self, values, dtype, layout="contiguous", requires_grad=False):
        """A jax array with these exact values in ``dtype`` (floating) or int64; every layout
        is the contiguous array (jax arrays have no strides); ``requires_grad`` is unused
        (jax differentiates functions, not arrays)."""
        if not isinstance(values, np.ndarray):
            return values
        kind = DTYPES[dtype] if values.dtype.kind == "f" else np.int64
        return self._jax.device_put(np.array(values, dtype=kind, order="C"), self._cpu)

    @staticmethod
    def snapshot(native):
        """Nothing to keep: jax arrays are immutable."""
        return None

    @staticmethod
    def unchanged(native, snapshot) -> bool:
        return True

    def read_output(self, output):
        """(float64 numpy values, dtype name) of a returned jax array; WrongOutput otherwise."""
        jax = self._jax
        if not isinstance(output, jax.Array):
            raise WrongOutput(f"returned {type(output).__name__}, expected a jax.Array")
        if isinstance(output, jax.core.Tracer):
            raise WrongOutput("returned a jax tracer (leaked from a transformation), expected "
                              "a concrete jax.Array")
        values = np.asarray(output)
        return values.astype(np.float64), values.dtype.name

    def gradients(self, output, inputs: dict, grad_output, dtype: str, vjp=None, args=(),
                  kwargs=None, function=None) -> dict:
        """d(output . grad_output)/d(input) for each named input, by ``jax.vjp`` of
        ``function(*args, **kwargs)`` in the inputs (the arrays in ``args``/``kwargs`` that are
        ``inputs``' values); ``vjp`` (the numpy protocol's ``<name>_vjp``) is unused."""
        jax = self._jax
        if function is None:
            raise ForwardOnly("no function to differentiate (the suite did not pass it)")
        kwargs = dict(kwargs or {})
        names = list(inputs)
        positions = {}  # input name -> index in args, or None where it is a keyword
        for name in names:
            index = next((i for i, a in enumerate(args) if a is inputs[name]), None)
            if index is None and not (name in kwargs and kwargs[name] is inputs[name]):
                raise WrongOutput(f"input {name!r} is neither a positional nor a keyword "
                                  f"argument of the call")
            positions[name] = index

        def of_inputs(leaves):
            call_args, call_kwargs = list(args), dict(kwargs)
            for name, leaf in leaves.items():
                if positions[name] is None:
                    call_kwargs[name] = leaf
                else:
                    call_args[positions[name]] = leaf
            return function(*call_args, **call_kwargs)

        primal, pullback = jax.vjp(of_inputs, {n: inputs[n] for n in names})
        if not isinstance(primal, jax.Array):
            raise WrongOutput(f"returned {type(primal).__name__} under jax.vjp, expected a "
                              f"jax.Array")
        upstream = np.asarray(grad_output, dtype=np.float64)
        if upstream.shape != primal.shape:
            raise WrongOutput(f"output has shape {tuple(primal.shape)}, expected "
                              f"{tuple(upstream.shape)}")
        cotangent = jax.device_put(upstream.astype(primal.dtype), self._cpu)
        grads = pullback(cotangent)[0]
        result = {}
        for name in names:
            grad = grads.get(name)
            # jax's zero cotangent for an input the output does not depend on is a real zero
            # (float0 only for integer inputs, which are never differentiable here)
            result[name] = None if grad is None or grad.dtype == jax.dtypes.float0 else \
                self.read_output(grad)
        return result

    def timed_calls(self, function, args, kwargs, leaves: dict, upstream, vjp=None):
        """(forward, forward+backward) closures for timing: each waits for its result (jax
        dispatches asynchronously); the backward is ``jax.vjp`` in ``leaves`` (positional
        arguments) and its pullback, as a training step differentiates the loss; the function
        runs as the candidate wrote it (op by op unless it jits itself)."""
        jax = self._jax
        positions = {n: next(i for i, a in enumerate(args) if a is leaf)
                     for n, leaf in leaves.items()}

        def of_leaves(*values):
            call_args = list(args)
            for name, value in zip(leaves, values):
                call_args[positions[name]] = value
            return function(*call_args, **kwargs)

        def forward():
            return function(*args, **kwargs).block_until_ready()

        def forward_backward():
            output, pullback = jax.vjp(of_leaves, *leaves.values())
            jax.block_until_ready(pullback(upstream.astype(output.dtype)))

        return forward, forward_backward

    @staticmethod
    def differentiates(output, vjp=None) -> bool:
        """jax.vjp differentiates any traceable function."""
        return True

    @staticmethod
    def synchronize():
        """Each timed closure waits for its own result (block_until_ready)."""

    @staticmethod
    def refusal(error: BaseException):
        """A DtypeRefused for NotImplementedError or XLA's UNIMPLEMENTED, else None."""
        text = str(error)
        if isinstance(error, NotImplementedError) or (
                type(error).__name__ in ("XlaRuntimeError", "JaxRuntimeError")
                and text.startswith("UNIMPLEMENTED")):
            return DtypeRefused(text.splitlines()[0] if text else type(error).__name__)
        return None
