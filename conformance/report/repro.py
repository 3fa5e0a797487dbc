"""Standalone reproducers: one small .py per failing check, with its exact arrays beside it.

``write_repro`` saves the case's arrays (and, for an inaccurate result, the exact values and the
allowed error per element) to ``<name>.npz`` and writes ``<name>.py``, which imports only numpy,
the candidate's framework and the candidate itself, calls the candidate exactly as the check
did and exits 1 while the failure is there. (An option built per framework, such as a user
distance function, is rebuilt from the suite module that defines it.) The script's code is fixed
(``_SCRIPT``); only its CASE literal changes from one failure to the next.
"""

from __future__ import annotations

import pprint
import re
from pathlib import Path

import numpy as np

_SCRIPT = '''
import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

ARRAYS = np.load(Path(__file__).with_suffix(".npz"))
ALIASES = {"torch": "torch.nn.functional", "torch-cuda": "torch.nn.functional",
           "numpy": "conformance.builtin.numpy_losses"}


def option(value):
    """An option as the check passed it; {"built_by": module, "repr": text} is an object
    that the suite's module rebuilds (e.g. a user distance function)."""
    if isinstance(value, dict) and "built_by" in value:
        namespace = vars(importlib.import_module(value["built_by"]))
        return eval(value["repr"], dict(namespace))
    return value


def load_function():
    impl = CASE["impl"]
    if impl.endswith(".py"):
        spec = importlib.util.spec_from_file_location("candidate", impl)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(Path(impl).parent))
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(ALIASES.get(impl, impl))
    return module, getattr(module, CASE["loss"])


def native(name, values):
    """The argument as the candidate saw it: dtype, device and memory layout."""
    layout = CASE["layouts"].get(name, "contiguous")
    if CASE["framework"] == "torch":
        import torch

        dtype = getattr(torch, CASE["dtype"]) if values.dtype.kind == "f" else torch.int64
        t = torch.from_numpy(np.array(values, order="C")).to(dtype).to(CASE["device"])
        if layout == "transposed" and t.dim() == 2:
            t = t.T.contiguous().T
        elif layout == "sliced" and t.dim() >= 1:
            wide = t.new_zeros(t.shape[:-1] + (2 * t.shape[-1] + 1,))
            wide[..., 1::2] = t
            t = wide[..., 1::2]
        elif layout == "expanded" and t.dim() >= 1 and t.shape[0] > 0:
            t = t[:1].expand(t.shape)
        if CASE["check"] == "gradient" and name in CASE["differentiable"]:
            t = t.detach().requires_grad_(True)
        return t
    import ml_dtypes

    floating = ml_dtypes.bfloat16 if CASE["dtype"] == "bfloat16" else np.dtype(CASE["dtype"])
    dtype = floating if values.dtype.kind == "f" else np.int64
    a = values.astype(dtype)
    if CASE["framework"] == "jax":  # jax arrays have no strides: every layout is this one
        import jax

        return jax.device_put(a, jax.devices("cpu")[0])
    if layout == "transposed" and a.ndim == 2:
        a = np.ascontiguousarray(a.T).T
    elif layout == "sliced" and a.ndim >= 1:
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1] + 1,), dtype=a.dtype)
        wide[..., 1::2] = a
        a = wide[..., 1::2]
    elif layout == "expanded" and a.ndim >= 1 and a.shape[0] > 0:
        a = np.broadcast_to(a[:1], a.shape)
    return a


def as_float64(value):
    if hasattr(value, "detach"):
        value = value.detach().to("cpu").double().numpy()
    return np.asarray(value, dtype=np.float64)


def judge(name, got):
    """Print the elements outside the allowed error; True when there are none."""
    if "exact_" + name not in ARRAYS:
        return True  # not the output that failed
    exact, allowed = ARRAYS["exact_" + name], ARRAYS["allowed_" + name]
    if got.shape != exact.shape:
        print(f"{name}: shape {got.shape}, expected {exact.shape}")
        return False
    with np.errstate(invalid="ignore"):
        ok = (got == exact) | (np.isnan(got) & np.isnan(exact)) | (np.abs(got - exact) <= allowed)
    for index in np.argwhere(~ok)[:10]:
        i = tuple(int(j) for j in index)
        print(f"{name}{list(i)}: candidate {float(got[i])!r}, exact {float(exact[i])!r}, "
              f"allowed error {float(allowed[i]):.3g}")
    return bool(ok.all())


def main():
    if CASE["framework"] == "jax":  # float64 is float64 only with x64 on, before any array
        import jax

        jax.config.update("jax_enable_x64", True)
    module, function = load_function()
    values = {name: ARRAYS["arg_" + name] for name in CASE["array_args"]}
    values.update(CASE["other_args"])
    natives = {name: native(name, v) if isinstance(v, np.ndarray) else v
               for name, v in values.items()}
    before = {name: np.array(as_float64(v)) for name, v in natives.items()
              if isinstance(values[name], np.ndarray)}
    args = [natives[name] for name in CASE["positional"]]
    kwargs = {name: natives[name] for name in CASE["keyword_arrays"] if name in natives}
    kwargs.update({name: option(value) for name, value in CASE["options"].items()})
    print(CASE["message"])
    if CASE["check"] == "invalid":
        try:
            output = function(*args, **kwargs)
        except Exception as error:
            print(f"fixed: the call now raises {type(error).__name__}: {error}")
            return 0
        print(f"accepted the invalid call and returned {output!r}")
        return 1
    output = function(*args, **kwargs)
    ok = True
    for name, old in before.items():
        new = as_float64(natives[name])
        if not np.array_equal(old, new, equal_nan=True):
            print(f"modified its input {name} in place")
            ok = False
    if CASE["check"] == "value":
        return 0 if judge("output", as_float64(output)) and ok else 1
    upstream = ARRAYS["grad_output"]
    if CASE["framework"] == "torch":
        import torch

        leaves = [n for n in CASE["differentiable"] if n in natives]
        grads = torch.autograd.grad(output, [natives[n] for n in leaves],
                                    native("grad_output", upstream), allow_unused=True)
        grads = dict(zip(leaves, grads))
    elif CASE["framework"] == "jax":
        import jax

        leaves = [n for n in CASE["differentiable"] if n in natives]

        def of_leaves(*leaf_values):
            bound = dict(natives, **dict(zip(leaves, leaf_values)))
            return function(*[bound[n] for n in CASE["positional"]],
                            **{**kwargs, **{n: bound[n] for n in leaves if n in kwargs}})

        out, pullback = jax.vjp(of_leaves, *[natives[n] for n in leaves])
        grads = dict(zip(leaves, pullback(jax.numpy.asarray(upstream, dtype=out.dtype))))
    else:
        grads = getattr(module, CASE["loss"] + "_vjp")(native("grad_output", upstream),
                                                        *args, **kwargs)
    for name in CASE["grad_names"]:
        if grads.get(name) is None:
            print(f"no gradient reached {name}")
            ok = False
        else:
            ok = judge(f"grad[{name}]", as_float64(grads[name])) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
'''


def _literal(option):
    """An option as a literal the script can hold: objects built per framework become
    {"built_by": their module, "repr": their repr}."""
    if callable(getattr(option, "for_framework", None)):
        return {"built_by": type(option).__module__, "repr": repr(option)}
    return option


def safe_name(text: str, limit: int = 120) -> str:
    """A file name made of [A-Za-z0-9_.-] from a test name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:limit] or "check"


def write_repro(repro_dir: Path, name: str, *, impl: str, framework: str, device: str,
                loss: str, positional, keyword_arrays, differentiable, check: str,
                dtype: str, args: dict, layouts: dict, options: dict, grad_output,
                evidence: dict, message: str, rerun: str) -> Path:
    """Write ``<name>.py`` and ``<name>.npz`` into ``repro_dir``; return the .py path.

    ``check`` is "value", "gradient" or "invalid"; ``evidence`` maps a failing output
    ("output", "grad[input]") to {"exact": array, "allowed": array}; ``args`` holds the case's
    arguments (numpy arrays, label lists, scalars; None for absent ones).
    """
    repro_dir = Path(repro_dir)
    repro_dir.mkdir(parents=True, exist_ok=True)
    stem = safe_name(name)
    arrays = {f"arg_{k}": v for k, v in args.items() if isinstance(v, np.ndarray)}
    for output, values in evidence.items():
        arrays[f"exact_{output}"] = np.asarray(values["exact"], dtype=np.float64)
        arrays[f"allowed_{output}"] = np.asarray(values["allowed"], dtype=np.float64)
    if grad_output is not None:
        arrays["grad_output"] = np.asarray(grad_output, dtype=np.float64)
    np.savez_compressed(repro_dir / f"{stem}.npz", **arrays)
    case = {
        "impl": str(Path(impl).resolve()) if impl.endswith(".py") else impl,
        "framework": framework, "device": device, "loss": loss, "check": check,
        "dtype": dtype, "positional": list(positional), "keyword_arrays": list(keyword_arrays),
        "differentiable": list(differentiable),
        "grad_names": [n for n in differentiable if args.get(n) is not None],
        "array_args": [k for k, v in args.items() if isinstance(v, np.ndarray)],
        "other_args": {k: v for k, v in args.items()
                       if v is not None and not isinstance(v, np.ndarray)},
        "layouts": dict(layouts), "options": {k: _literal(v) for k, v in options.items()},
        "message": message,
    }
    docstring = (f"Reproduces, without the suite: {loss} on {impl} does not conform.\n\n"
                 f"{message}\n\nRun: python {stem}.py  (exit status 1 while the failure is "
                 f"there)\nWithin the suite: {rerun}\n")
    docstring = docstring.replace("\\", "\\\\").replace('"' * 3, "'" * 3)
    case_literal = f"\nCASE = {pprint.pformat(case, width=96)}\n\n\ndef load_function"
    script = f'"""{docstring}"""\n' + _SCRIPT.replace("\ndef load_function", case_literal, 1)
    path = repro_dir / f"{stem}.py"
    path.write_text(script, encoding="utf-8")
    return path
