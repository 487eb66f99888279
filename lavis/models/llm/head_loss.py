"""The LM head and cross-entropy at the labelled positions, in chunks: the training loss's last step.

`MiniGPT4Qwen.forward` hands the decoder's hidden states at the labelled positions here.  With a
vocabulary of 151,936 words the logits of a batch (labelled positions x vocabulary, in fp32 for
the loss) are the step's largest tensor: 8 samples of 130 labelled tokens are 630 MB, kept for
backward, plus their gradient.  `head_loss` computes them a chunk of positions at a time and
turns each chunk into its loss and its gradients at once (softmax minus the one-hot target,
multiplied back through the head), so only one chunk's logits ever exist and backward only
scales the stored gradients.  Hand-written because torch has no fused linear + cross-entropy
(Liger-Kernel's is Triton-only, for GPUs); the matmuls run in the autocast dtype as the plain
path's do, the softmax and the loss in fp32.

Heads that are not a plain `nn.Linear` without bias (LoRA- or FSDP-wrapped, Gemma's logit
soft-capping) take the plain path: the whole head, then `F.cross_entropy`.
"""

import torch
import torch.nn.functional as F
from torch import nn

#: logits elements per chunk (2^24: 64 MiB in fp32; 110 positions of a 151,936-word vocabulary).
#: Measured on 2 CPU cores (hidden 512, 440 positions): in bf16 the head + loss ran at 308 GFLOP/s
#: in chunks of 110 positions, 276 in chunks of 220; in fp32 alike (111 / 90-120)
CHUNK_ELEMENTS = 2**24


def head_logits(hidden, head, softcap=None):
    """The output layer's logits of `hidden`, soft-capped as Gemma 2's own forward does after it."""
    logits = head(hidden)
    return torch.tanh(logits / softcap) * softcap if softcap else logits


def head_loss(hidden, head, targets, softcap=None, chunk_elements=CHUNK_ELEMENTS):
    """Summed cross-entropy of `head(hidden)` against `targets`: hidden (N, H), targets (N,)."""
    fused = type(head) is nn.Linear and head.bias is None and not softcap and chunk_elements > 0
    if not fused:
        return F.cross_entropy(head_logits(hidden, head, softcap).float(), targets, reduction="sum")
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    rows = max(1, chunk_elements // head.weight.shape[0])
    # inside an autograd.Function's forward grad mode is always off and needs_input_grad ignores
    # it, so whether gradients are wanted (not under torch.no_grad) is read here
    with torch.autocast(device, enabled=False):
        return _ChunkedHeadLoss.apply(hidden, head.weight, targets, rows, dtype, torch.is_grad_enabled())


class _ChunkedHeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, rows, dtype, grad_enabled):
        need_hidden, need_weight = grad_enabled and ctx.needs_input_grad[0], grad_enabled and ctx.needs_input_grad[1]
        w = weight.to(dtype)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_weight else None
        for start in range(0, hidden.shape[0], rows):
            h = hidden[start : start + rows].to(dtype)
            t = targets[start : start + rows]
            # one fused pass (the fp32 upcast included) instead of logsumexp's several over the chunk
            log_probs = torch.log_softmax(h @ w.t(), dim=-1, dtype=torch.float32)
            total -= log_probs.gather(1, t[:, None]).sum()
            if not (need_hidden or need_weight):
                continue
            # d(summed loss)/d(logits) = softmax - one-hot, computed in place over the log-probabilities
            grad = log_probs.exp_()
            grad[torch.arange(t.shape[0], device=t.device), t] -= 1.0
            grad = grad.to(dtype)
            if need_hidden:
                grad_hidden[start : start + rows] = grad @ w
            if need_weight:
                grad_weight += (grad.t() @ h).float()
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = grad_hidden * grad_output.to(grad_hidden.dtype)
        if grad_weight is not None:
            grad_weight = (grad_weight * grad_output).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None, None, None
