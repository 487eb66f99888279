"""On a GPU: the frozen ViT in fp16 (`vit_precision: fp16`, as the real recipe has it) under autocast
gives the fp32 ViT's image embeddings."""

import pytest
import torch

from lavis.models import load_model

pytestmark = pytest.mark.cuda
FROZEN = {"vit_precision": "fp16", "freeze_vit": True, "freeze_qformer": True, "freeze_queries": True}


def test_fp16_vit_under_autocast_matches_fp32(cuda_device):
    torch.manual_seed(0)
    half = load_model("minigpt4qwen", "tiny", device=cuda_device, cfg_options=FROZEN).eval()
    torch.manual_seed(0)
    full = load_model("minigpt4qwen", "tiny", device="cpu", cfg_options=dict(FROZEN, vit_precision="fp32")).eval()
    linears = [m for m in half.visual_encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.float16 for m in linears)  # LayerNorms stay fp32
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), torch.autocast(torch.device(cuda_device).type, dtype=torch.float16):
        got = half.encode_image(images.to(cuda_device)).float().cpu()
    with torch.no_grad():
        want = full.encode_image(images)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, atol=2e-2, rtol=2e-2)
