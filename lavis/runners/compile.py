"""Optional `torch.compile` of the LLM's decoder layers (`run.compile: true`), called by the runner.

Each decoder layer's `forward` is replaced by its compiled self (backend inductor), so parameter
names, checkpoints, LoRA adapters inside the layers and DDP wrapping stay as they are; the ViT,
Q-former and the loss run eagerly, and so does everything under no_grad (evaluation, chat).
Compilation happens at the first training forward of each new shape.
On CPU inductor writes C++ and needs a compiler (g++): one is looked for up front, and any
compilation failure stops with a one-line `CompileError` (a ConfigError: train.py prints it as
`error: ...`) instead of a compiler trace.
"""

import functools

import torch

from lavis.common.config import ConfigError


class CompileError(ConfigError):
    """run.compile: true cannot work here (no C++ compiler, or torch.compile failed)."""


def check_cpu_compiler():
    """The C++ compiler inductor will use on CPU, or CompileError."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        return get_cpp_compiler()
    except Exception as err:  # InvalidCxxCompiler, or this torch moved the helper
        raise CompileError(
            f"run.compile: true needs a C++ compiler for inductor on CPU (g++; none usable: {type(err).__name__}): "
            "install g++ or set run.compile=false"
        ) from None


def _guarded(forward, where):
    """`forward` with torch.compile's failures turned into one-line CompileErrors."""

    @functools.wraps(forward)
    def call(*args, **kwargs):
        try:
            return forward(*args, **kwargs)
        except torch._dynamo.exc.TorchDynamoException as err:
            cause = getattr(err, "inner_exception", None) or err  # BackendCompilerFailed wraps the backend's error
            first = (str(cause).strip().splitlines() or [""])[0][:300]
            raise CompileError(
                f"run.compile: true: torch.compile failed on {where} ({type(cause).__name__}: {first}); set "
                "run.compile=false"
            ) from None

    return call


def decoder_layers(model):
    """The LLM's decoder layers (under a peft wrapper if there is one)."""
    return model._decoder().layers


def compile_llm_layers(model, enabled, device, backend="inductor"):
    """Compile `model`'s LLM decoder layers in place when `enabled`; returns how many were compiled."""
    if not enabled:
        return 0
    if torch.device(device).type == "cpu" and backend == "inductor":
        check_cpu_compiler()
    layers = decoder_layers(model)
    for i, layer in enumerate(layers):
        layer.forward = _training_only(
            layer.forward, _guarded(torch.compile(layer.forward, backend=backend), f"LLM decoder layer {i}")
        )
    return len(layers)


def _training_only(eager, compiled):
    """The compiled forward where gradients are on (training steps), the eager one under
    no_grad (evaluation and chat): generation's growing KV cache would otherwise recompile at
    every new length until dynamo gives up."""

    @functools.wraps(eager)
    def call(*args, **kwargs):
        return (compiled if torch.is_grad_enabled() else eager)(*args, **kwargs)

    return call
