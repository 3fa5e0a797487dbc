"""Built-in candidate ``--impl=torch-compile``: torch.nn.functional's losses under torch.compile.

Every loss the suite covers (``conformance.specs.SPECS``, except ``multi_hot``, which torch
lacks) is ``torch.nn.functional.<name>`` compiled by ``torch.compile`` with the default backend,
inductor, which on the CPU generates and compiles C++ (a C++ compiler must be on the machine).
Gradients come from autograd through the compiled function (AOTAutograd compiles the backward
too), so the suite checks inductor's forward and backward kernels, not eager's.

Design decisions (measured on the shared 2-core machine, torch 2.13.0):

- **One code object per loss.** ``torch.compile(F.huber_loss)`` wraps torch's function in a
  helper (``torch/_dynamo/external_utils.py:inner``) whose code object every loss would share,
  and dynamo keeps its cache and its recompile count per code object: the 21 losses would share
  one limit. Each loss here is a one-line wrapper of its own, generated per name, that calls
  ``F.<name>`` and carries its signature; dynamo inlines F's Python front end (argument checks,
  legacy ``size_average``/``reduce``, broadcasting warnings) and compiles what it calls.
- **dynamic=True.** Without it the first call compiles for the exact shape, the second shape
  recompiles with automatic dynamic shapes, and hypothesis draws a new shape almost every
  example. With it one graph serves every shape of a rank (first compile about 15 s, 0.0 s
  for the next shapes). Sizes 0 and 1 are still specialised by dynamo (its 0/1
  specialisation), and rank, dtype, layout class (contiguity), ``requires_grad`` and
  ``weight is None`` are guarded: each such combination compiles once (1-3 s, less when
  inductor's on-disk cache in ``/tmp/torchinductor_$USER`` already has the graph).
- **Options are Python constants.** Strings (``reduction``), bools (``log_target``, ``full``,
  ``swap``), ints (``ignore_index``, ``blank``, ``p``) and floats (``delta``, ``beta``,
  ``margin``, ``eps``, ``label_smoothing``) are guarded by value (``kwargs['delta'] == 0.5``)
  and baked into the generated code: each distinct value recompiles once (0.5-3 s). That is
  what a user of torch.compile gets, so it is what is tested; hypothesis' random floats make
  the options with float values (huber, smooth_l1, margin losses) the slowest to check.
- **Recompile limits raised, never a silent fallback.** dynamo's default
  ``recompile_limit`` (alias ``cache_size_limit``) of 8 per code object would, once hit, run the
  function *eagerly* with only a warning, and the suite would be testing eager torch under the
  name torch-compile. The limits are raised to ``RECOMPILE_LIMIT`` per loss and
  ``fail_on_recompile_limit_hit`` is set, so a candidate that still hits the limit raises
  (a visible failure), not falls back.
- **fullgraph=False.** Where dynamo cannot trace (a data-dependent check in F's front end, an
  op without a meta kernel) it breaks the graph and runs that part eagerly, as a user's
  ``torch.compile`` would; ``fullgraph=True`` would turn such a break into an error on a valid
  input, which is a limitation of tracing, not a deviation of the function.
- **Compile threads.** ``torch._inductor.config.compile_threads = 1``: a pool of compile
  workers per candidate worker process costs more than it saves on a 2-core machine.

Deviations found by the suite are listed in ``conformance/deviations/compiled.py`` (impl
``torch-compile``); eager torch's deviations (impl ``torch``) do not carry over by themselves.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch._dynamo import config as _dynamo_config

from ..specs import SPECS

FRAMEWORK = "torch"
DYNAMIC = True
FULLGRAPH = False
RECOMPILE_LIMIT = 1024  # per loss (code object); the default, 8, would fall back to eager

_dynamo_config.recompile_limit = RECOMPILE_LIMIT
_dynamo_config.accumulated_recompile_limit = 16 * RECOMPILE_LIMIT
_dynamo_config.fail_on_recompile_limit_hit = True
torch._inductor.config.compile_threads = 1

_TEMPLATE = "def {name}(*args, **kwargs):\n    return _F.{name}(*args, **kwargs)\n"


def _compiled(name: str):
    """``F.<name>`` compiled, with a code object of its own and F's signature."""
    namespace = {"_F": F}
    exec(compile(_TEMPLATE.format(name=name), f"<torch-compile {name}>", "exec"), namespace)
    wrapper = namespace[name]
    eager = getattr(F, name)
    wrapper.__doc__ = f"torch.compile(F.{name}, dynamic={DYNAMIC}, fullgraph={FULLGRAPH})"
    wrapper.__signature__ = inspect.signature(eager)
    function = torch.compile(wrapper, dynamic=DYNAMIC, fullgraph=FULLGRAPH)
    function.__signature__ = wrapper.__signature__
    return function


LOSSES = tuple(name for name in SPECS if callable(getattr(F, name, None)))
for _name in LOSSES:
    globals()[_name] = _compiled(_name)
del _name
