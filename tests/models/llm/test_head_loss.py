"""The chunked LM head + cross-entropy equals the plain one: loss and gradients, fp32 and bf16."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lavis.models.llm.head_loss import head_loss


def plain(hidden, head, targets):
    return F.cross_entropy(head(hidden).float(), targets, reduction="sum")


def case(vocab=1000, width=64, rows=37, seed=0):
    torch.manual_seed(seed)
    head = nn.Linear(width, vocab, bias=False)
    hidden = torch.randn(rows, width, requires_grad=True)
    targets = torch.randint(0, vocab, (rows,))
    return head, hidden, targets


def loss_and_grads(fn, head, hidden, targets, **kwargs):
    hidden.grad, head.weight.grad = None, None
    loss = fn(hidden, head, targets, **kwargs)
    (loss * 0.5).backward()  # a scale on the way back, as the mean over tokens puts there
    return loss.detach(), hidden.grad.clone(), head.weight.grad.clone()


@pytest.mark.parametrize("chunk_elements", [1000, 7 * 1000, 10**9])  # 1 row, 7 rows, all at once
def test_fp32_loss_and_gradients_equal_the_plain_head(chunk_elements):
    head, hidden, targets = case()
    ref = loss_and_grads(plain, head, hidden, targets)
    got = loss_and_grads(head_loss, head, hidden, targets, chunk_elements=chunk_elements)
    assert ref[0].item() > 37 * 5  # a real loss (ln 1000 ~ 6.9 per row), not an empty one
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[2], ref[2], rtol=1e-5, atol=1e-6)


def test_frozen_head_gets_no_gradient_and_hidden_still_does():
    head, hidden, targets = case()
    head.weight.requires_grad_(False)
    hidden.grad = None
    head_loss(hidden, head, targets, chunk_elements=5000).backward()
    ref = hidden.grad.clone()
    hidden.grad = None
    plain(hidden, head, targets).backward()
    assert head.weight.grad is None
    torch.testing.assert_close(ref, hidden.grad, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_matches_the_plain_head_under_autocast():
    """Both paths multiply in bf16 and take the softmax in fp32, so they differ only in summation
    order: relative loss difference well under bf16's 2^-8 resolution."""
    head, hidden, targets = case(vocab=4096, width=128, rows=64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = loss_and_grads(plain, head, hidden, targets)
        got = loss_and_grads(head_loss, head, hidden, targets, chunk_elements=4096 * 10)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(got[1], ref[1], rtol=2e-2, atol=2e-3)
    torch.testing.assert_close(got[2], ref[2], rtol=2e-2, atol=2e-3)
    assert got[1].dtype == hidden.dtype and got[2].dtype == head.weight.dtype


def test_heads_it_cannot_fuse_take_the_plain_path():
    head, hidden, targets = case()
    biased = nn.Linear(64, 1000)
    torch.testing.assert_close(head_loss(hidden, biased, targets), plain(hidden, biased, targets))
    capped = head_loss(hidden, head, targets, softcap=2.0)
    ref = F.cross_entropy((torch.tanh(head(hidden) / 2.0) * 2.0).float(), targets, reduction="sum")
    torch.testing.assert_close(capped, ref)


def test_under_no_grad_only_the_head_runs():
    """Evaluation's loss (torch.no_grad) computes no gradient: one head matmul, 2 x N x H x V FLOPs."""
    head, hidden, targets = case(rows=40)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        loss = head_loss(hidden, head, targets, chunk_elements=10 * 1000)
    assert counter.get_total_flops() == 2 * 40 * 64 * 1000
    torch.testing.assert_close(loss, plain(hidden, head, targets).detach(), rtol=1e-5, atol=1e-5)
