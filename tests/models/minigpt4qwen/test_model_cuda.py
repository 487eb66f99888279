"""On a GPU: the LLM in bf16 trains llm_proj with the fp32 model's loss; batched generation gives each
prompt the reply it gets alone."""

import pytest
import torch

from lavis.models import load_model

pytestmark = pytest.mark.cuda
CONVERSATION = [
    {"from": "user", "value": "<Img><ImageHere></Img> What colour is the shape?"},
    {"from": "assistant", "value": "The red circle is on the left."},
]


def samples(n=4):
    images = torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    return {"image": images, "conversations": [CONVERSATION] * n}


def test_bf16_llm_trains_llm_proj_with_the_fp32_loss(cuda_device):
    options = {"freeze_vit": True, "freeze_qformer": True, "freeze_queries": True, "freeze_llm": True}
    torch.manual_seed(0)
    bf16 = load_model("minigpt4qwen", "tiny", device=cuda_device, cfg_options=options)
    bf16.llm_model.to(torch.bfloat16)  # as Qwen-7B-Chat's weights load (llm_dtype applies to loaded weights only)
    torch.manual_seed(0)
    fp32 = load_model("minigpt4qwen", "tiny", device="cpu", cfg_options=options)
    batch = samples()
    with torch.autocast(torch.device(cuda_device).type, dtype=torch.bfloat16):
        loss = bf16(dict(batch, image=batch["image"].to(cuda_device)))["loss"]
    loss.backward()
    grad = bf16.llm_proj.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert abs(loss.item() - fp32(batch)["loss"].item()) < 0.05 * fp32(batch)["loss"].item()


def test_batched_generation_equals_one_prompt_at_a_time(cuda_device):
    torch.manual_seed(0)
    model = load_model("minigpt4qwen", "tiny", device=cuda_device).eval()
    images = samples(2)["image"].to(cuda_device)
    texts = [
        "<|im_start|>user\n<Img><ImageHere></Img> What colour is the shape?<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\n<Img><ImageHere></Img> Hi<|im_end|>\n<|im_start|>assistant\n",
    ]
    batched = model.generate({"image": images, "text": texts}, max_new_tokens=4)
    alone = [model.generate({"image": images[i : i + 1], "text": t}, max_new_tokens=4)[0] for i, t in enumerate(texts)]
    assert batched == alone
