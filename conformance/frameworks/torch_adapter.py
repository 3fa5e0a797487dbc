"""The torch adapter: tensors in every layout, autograd for gradients."""

from __future__ import annotations

import numpy as np
import torch

from . import DtypeRefused, ForwardOnly, WrongOutput

DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
          "bfloat16": torch.bfloat16}


def _layout(tensor: torch.Tensor, layout: str) -> torch.Tensor:
    """A view of ``tensor``'s values with the requested memory layout."""
    if layout == "transposed" and tensor.dim() == 2:
        return tensor.T.contiguous().T
    if layout == "sliced" and tensor.dim() >= 1:
        wide = torch.zeros(tensor.shape[:-1] + (2 * tensor.shape[-1] + 1,), dtype=tensor.dtype,
                           device=tensor.device)
        wide[..., 1::2] = tensor  # stride 2 and a nonzero storage offset
        return wide[..., 1::2]
    if layout == "expanded" and tensor.dim() >= 1 and tensor.shape[0] > 0:
        return tensor[:1].expand(tensor.shape)
    return tensor


def _storage_bytes(tensor: torch.Tensor) -> torch.Tensor:
    """The bytes of the whole storage under ``tensor`` as a uint8 tensor (no copy)."""
    storage = tensor.detach().untyped_storage()
    return torch.empty(0, dtype=torch.uint8, device=tensor.device).set_(storage)


class TorchFramework:
    """Candidates that take and return torch tensors."""

    name = "torch"
    torch_threads = True  # calls run in torch's intra-op thread pool

    def __init__(self, device: str = "cpu"):
        self.device = device

    @staticmethod
    def version() -> str:
        return torch.__version__

    def warm_up(self):
        """Run autograd once, with an upstream gradient as the checks pass one: its first use
        starts threads and imports modules (seconds)."""
        x = torch.ones(4, device=self.device, requires_grad=True)
        torch.autograd.grad((x * x).sum(), x, grad_outputs=torch.ones((), device=self.device))

    def to_native(self, values, dtype, layout="contiguous", requires_grad=False):
        """A tensor with these exact values, in ``dtype`` (floating) or int64, laid out."""
        if not isinstance(values, np.ndarray):
            return values  # ints, lists of label lists: passed as they are
        if values.dtype.kind == "f":
            tensor = torch.from_numpy(np.array(values, order="C")).to(DTYPES[dtype])
        else:
            tensor = torch.from_numpy(np.array(values, order="C")).to(torch.int64)
        tensor = _layout(tensor.to(self.device), layout)
        if requires_grad:
            tensor = tensor.detach().requires_grad_(True)
        return tensor

    @staticmethod
    def snapshot(native):
        """A copy of every byte of the tensor's storage: its elements and, for a view, the
        memory around them, which a candidate must not write either."""
        if not isinstance(native, torch.Tensor):
            return None
        return _storage_bytes(native).clone()

    @staticmethod
    def unchanged(native, snapshot) -> bool:
        if snapshot is None:
            return True
        return bool(torch.equal(_storage_bytes(native), snapshot))

    def read_output(self, output):
        """(float64 numpy values, dtype name) of a returned tensor; WrongOutput otherwise."""
        if not isinstance(output, torch.Tensor):
            raise WrongOutput(f"returned {type(output).__name__}, expected a torch.Tensor")
        if output.device.type != torch.device(self.device).type:
            raise WrongOutput(f"returned a tensor on {output.device}, expected {self.device}")
        dtype = str(output.dtype).replace("torch.", "")
        return output.detach().to("cpu", torch.float64).numpy(), dtype

    def gradients(self, output, inputs: dict, grad_output, dtype: str, vjp=None, args=(),
                  kwargs=None, function=None) -> dict:
        """d(output . grad_output)/d(input) for each named input; None where it does not flow.

        Computed by autograd from the returned tensor (``vjp``, ``args``, ``kwargs`` unused).
        """
        if not isinstance(output, torch.Tensor) or not output.requires_grad:
            raise ForwardOnly("the output carries no gradient (requires_grad is False)")
        upstream = torch.from_numpy(np.asarray(grad_output, dtype=np.float64)).to(
            DTYPES[dtype]).to(self.device)
        if upstream.shape != output.shape:
            raise WrongOutput(f"output has shape {tuple(output.shape)}, expected "
                              f"{tuple(upstream.shape)}")
        names = list(inputs)
        grads = torch.autograd.grad(output, [inputs[n] for n in names], upstream,
                                    allow_unused=True)
        return {n: None if g is None else self.read_output(g) for n, g in zip(names, grads)}

    def timed_calls(self, function, args, kwargs, leaves: dict, upstream, vjp=None):
        """(forward, forward+backward) closures for timing: the call, and the call then
        autograd's gradient in ``leaves`` for ``upstream`` (``autograd.grad``, not
        ``.backward()``: the same backward pass without accumulating into ``.grad``, a
        read-modify-write a training step's zero_grad would not have)."""
        inputs = list(leaves.values())

        def forward():
            return function(*args, **kwargs)

        def forward_backward():
            torch.autograd.grad(forward(), inputs, upstream)

        return forward, forward_backward

    @staticmethod
    def differentiates(output, vjp=None) -> bool:
        """Whether gradients flow from this output (autograd)."""
        return isinstance(output, torch.Tensor) and output.requires_grad

    def peak_memory(self, call):
        """(bytes, "cuda-allocator") of ``call()`` on CUDA: the caching allocator's peak of
        allocated bytes during the call above what was allocated before it (the peak is reset
        first); None on the CPU, where conformance/memory.py measures the resident set."""
        if not self.device.startswith("cuda"):
            return None
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        call()
        torch.cuda.synchronize()
        return max(torch.cuda.max_memory_allocated() - before, 0), "cuda-allocator"

    def synchronize(self):
        """Wait for the device's queued work (CUDA), so a timer sees it done."""
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    @staticmethod
    def refusal(error: BaseException):
        """A DtypeRefused if ``error`` is the way torch declines a dtype, else None."""
        if isinstance(error, NotImplementedError) or (
                isinstance(error, RuntimeError) and "not implemented for" in str(error)):
            return DtypeRefused(str(error).splitlines()[0])
        return None
