"""Loading what ``--impl`` names, and calling it on Cases.

``--impl`` takes a built-in alias (``torch``, ``torch-cuda``, ``torch-compile``,
``torch-chunked``, ``numpy``), an importable dotted module name, or a path to a ``.py`` file. The
module's functions named like the specs (see ``conformance.specs.SPECS``) are the candidate's; a
module-level ``FRAMEWORK`` ("torch", the default, "numpy" or "jax") says which arrays they take.
"""

from __future__ import annotations

import functools

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .frameworks import framework_named
from .specs import SPECS

ALIASES = {
    "torch": ("torch.nn.functional", "torch", "cpu"),
    "torch-cuda": ("torch.nn.functional", "torch", "cuda"),
    "numpy": ("conformance.builtin.numpy_losses", "numpy", "cpu"),
    "torch-compile": ("conformance.builtin.torch_compiled", "torch", "cpu"),
    "torch-chunked": ("conformance.builtin.torch_chunked", "torch", "cpu"),
}


class CandidateError(Exception):
    """--impl names something that cannot be used; the message says what and how to fix it."""


@dataclass
class Call:
    """What one call of a candidate returned, read back into numpy."""

    value: np.ndarray | None = None
    dtype: str | None = None
    modified: list = field(default_factory=list)  # names of inputs the call changed
    grads: dict | None = None  # name -> (values, dtype) or None where no gradient flowed


@dataclass
class Candidate:
    """A loaded candidate: its functions by spec name and the framework that runs them."""

    label: str
    impl: str
    module: object
    framework: object
    functions: dict
    missing: tuple
    unavailable: str | None = None  # why this candidate cannot run here (e.g. no CUDA)
    runner: object = None  # an isolation.IsolatedRunner, or None to call in this process

    @property
    def device(self) -> str:
        return getattr(self.framework, "device", "cpu")

    def describe(self) -> str:
        found = ", ".join(self.functions) or "nothing"
        return (f"{self.label}: {self.impl} [{self.framework.name} {self.framework.version()}, "
                f"{self.device}] tests {found}"
                + (f"; not provided: {', '.join(self.missing)}" if self.missing else ""))

    def call(self, spec, case, with_grad: bool = False, options: dict | None = None) -> Call:
        """Call the candidate's ``spec`` function on ``case``; gradients too if asked.

        ``options`` replaces the case's keyword options in the call (the reference still
        follows the case's own), e.g. torch's legacy ``size_average``/``reduce`` spelling.
        With a runner the call runs in the candidate's worker process, and a crash or a hang
        raises ``isolation.CandidateFault``.
        """
        if self.runner is not None:
            return self.runner.call(spec, case, with_grad, options)
        return self.call_here(spec, case, with_grad, options)

    def start_call(self, spec, case, with_grad: bool = False, options: dict | None = None):
        """``call``, started: returns a function that waits for its Call (or raises what it
        raised). With a runner the candidate computes in its worker while this process goes on
        (to the reference); in this process the call runs now."""
        if self.runner is not None:
            sent_at = self.runner.send(spec, case, with_grad, options)
            return lambda: self.runner.receive(sent_at)
        try:
            call = self.call_here(spec, case, with_grad, options)
        except Exception as error:
            return functools.partial(_reraise, error)
        return lambda: call

    def call_here(self, spec, case, with_grad: bool = False, options: dict | None = None) -> Call:
        """``call`` in this process."""
        fw = self.framework
        natives = {}
        differentiable = spec.differentiable_args(case)
        for name, values in case.args.items():
            if values is None:
                continue
            wants_grad = with_grad and name in differentiable
            natives[name] = fw.to_native(values, case.dtype, case.layouts.get(name, "contiguous"),
                                         requires_grad=wants_grad)
        snapshots = {name: fw.snapshot(v) for name, v in natives.items()}
        args = [natives[name] for name in spec.positional]
        kwargs = {name: natives[name] for name in spec.keyword_arrays if name in natives}
        options = case.options if options is None else options
        kwargs.update({name: _native_option(value, fw) for name, value in options.items()})
        output = self.functions[spec.name](*args, **kwargs)
        result = Call()
        result.value, result.dtype = fw.read_output(output)
        result.modified = [n for n, v in natives.items() if not fw.unchanged(v, snapshots[n])]
        if with_grad:
            leaves = {n: natives[n] for n in differentiable}
            vjp = getattr(self.module, f"{spec.name}_vjp", None)
            result.grads = fw.gradients(output, leaves, case.grad_output, case.dtype, vjp=vjp,
                                        args=args, kwargs=kwargs,
                                        function=self.functions[spec.name])
        return result


def _reraise(error: Exception):
    raise error


def _native_option(value, framework):
    """An option as the candidate takes it. Most options are plain values; one that depends on
    the framework (e.g. a user distance function for triplet_margin_with_distance_loss) is an
    object with a ``for_framework(framework)`` method that builds the framework's own."""
    build = getattr(value, "for_framework", None)
    return build(framework) if callable(build) else value


def _import_file(path: Path, impl: str):
    """Import a candidate file; CandidateError naming ``impl`` (as the user gave it) if not."""
    name = f"conformance_candidate_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # let the file import its neighbours
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        raise CandidateError(f"--impl={impl}: syntax error at line {error.lineno}: "
                             f"{error.msg}") from None
    except Exception as error:
        raise CandidateError(f"--impl={impl}: importing it raised {type(error).__name__}: "
                             f"{error}") from None
    return module


def _import_module(name: str):
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        # The `pytest` script, unlike `python -m pytest`, does not put the current directory on
        # the path; a user's module beside them must still be importable by name.
        sys.path.append(str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and (name == error.name or name.startswith(error.name + ".")):
            raise CandidateError(
                f"--impl={name}: no module named {error.name!r}. Give a built-in alias "
                f"({', '.join(ALIASES)}), a module importable from here (check the current "
                f"directory and PYTHONPATH), or a path to a .py file") from None
        raise CandidateError(f"--impl={name}: importing it raised ModuleNotFoundError: "
                             f"{error}") from None
    except SyntaxError as error:
        raise CandidateError(f"--impl={name}: syntax error in {error.filename} at line "
                             f"{error.lineno}: {error.msg}") from None
    except Exception as error:
        raise CandidateError(f"--impl={name}: importing it raised {type(error).__name__}: "
                             f"{error}") from None


def _unavailable(framework, device: str) -> str | None:
    """Why a candidate of this framework cannot run on ``device`` here, or None."""
    if device == "cpu":
        return None
    if framework.name != "torch":
        return f"{framework.name} candidates run on the CPU only, not on {device}"
    import torch

    if not torch.cuda.is_available():
        return f"CUDA is not available on this machine (torch {torch.__version__})"
    return None


def _check_signatures(impl: str, functions: dict):
    """Each function must accept the spec's positional arguments, as torch's does."""
    import inspect

    for name, function in functions.items():
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            continue  # a builtin without a signature: its calls will tell
        expected = SPECS[name].positional
        try:
            signature.bind(*expected)
        except TypeError as error:
            raise CandidateError(
                f"--impl={impl}: {name}{signature} cannot be called as torch's {name}"
                f"({', '.join(expected)}, ...): {error}; give it torch.nn.functional.{name}'s "
                f"signature") from None


def load_candidate(impl: str, device: str | None = None) -> Candidate:
    """Load what one ``--impl`` value names; CandidateError with a one-line reason otherwise.

    ``device`` ("cpu" or "cuda") overrides the alias's own; a candidate that cannot run there
    loads all the same, with the reason in ``unavailable``.
    """
    framework_name, alias_device = None, "cpu"
    if impl in ALIASES:
        module_name, framework_name, alias_device = ALIASES[impl]
        module, label = _import_module(module_name), impl
    elif impl.endswith(".py") or Path(impl).is_file():
        path = Path(impl)
        if not path.is_file():
            raise CandidateError(f"--impl={impl}: no such file (relative paths start from "
                                 f"{Path.cwd()})")
        module, label = _import_file(path.resolve(), impl), path.stem
    else:
        module, label = _import_module(impl), impl
    framework_name = framework_name or getattr(module, "FRAMEWORK", "torch")
    try:
        framework = framework_named(framework_name)
    except ValueError as error:
        raise CandidateError(f"--impl={impl}: {error}") from None
    device = device or alias_device
    unavailable = _unavailable(framework, device)
    if device != "cpu" and unavailable is None:
        framework.device = device
    functions = {n: getattr(module, n) for n in SPECS if callable(getattr(module, n, None))}
    missing = tuple(n for n in SPECS if n not in functions)
    if not functions:
        raise CandidateError(f"--impl={impl}: defines none of the functions the suite tests "
                             f"(looked for {', '.join(SPECS)})")
    _check_signatures(impl, functions)
    candidate = Candidate(label, impl, module, framework, functions, missing, unavailable)
    if unavailable:
        candidate.framework.device = device  # reported as the device it was meant for
    return candidate


def load_candidates(impls, device: str | None = None) -> list:
    """Load every --impl value; labels are made unique by a numeric suffix."""
    candidates, seen = [], {}
    for impl in impls:
        candidate = load_candidate(impl, device)
        count = seen.get(candidate.label, 0)
        seen[candidate.label] = count + 1
        if count:
            candidate.label = f"{candidate.label}-{count + 1}"
        candidates.append(candidate)
    return candidates
