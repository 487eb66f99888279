"""On a GPU, through the runner: fp16 with the loss scaler trains; its checkpoint, written on the GPU,
loads into a model on the CPU; FSDP2 on one rank with bf16 mixed precision (torchrun) trains."""

import pytest
import torch

from lavis.common.checkpoint import load_file, model_state
from lavis.models import load_model
from tests.helpers.distributed import job_dir, steps, torchrun, write_config
from tests.helpers.runs import make_runner, read_log, run_config

pytestmark = pytest.mark.cuda


def test_fp16_with_loss_scaler_trains_and_its_checkpoint_loads_on_cpu(cuda_device, shapes_root, tmp_path):
    options = {"device": cuda_device, "amp": True, "autocast_dtype": "fp16", "loss_scale": True}
    cfg = run_config(shapes_root, tmp_path, max_epoch=1, valid_splits=[], **options)
    runner = make_runner(cfg)
    assert (runner.scaler is not None) == (cuda_device == "cuda")  # the runner scales losses on CUDA only
    runner.train()
    losses = [r["loss"] for r in read_log(tmp_path / "job" / "log.jsonl") if "loss" in r]
    assert losses and all(torch.isfinite(torch.tensor(x)) for x in losses)
    checkpoint = load_file(tmp_path / "job" / "checkpoint_0.pth", map_location="cpu")
    if runner.scaler is not None:
        assert checkpoint["scaler"]["scale"] > 0
    state = model_state(checkpoint, "checkpoint_0.pth")
    model = load_model("minigpt4qwen", "tiny", device="cpu")
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(state) <= {n for n, _ in model.named_parameters()}
    for name, value in model.named_parameters():
        if name in state:
            assert value.device.type == "cpu"
            torch.testing.assert_close(value.detach(), runner.model.state_dict()[name].float().cpu(), msg=name)


def test_fsdp2_on_one_rank_with_bf16_mixed_precision(cuda_device, shapes_root, tmp_path):
    cfg_path = write_config(shapes_root, tmp_path)
    proc = torchrun(
        cfg_path,
        f"run.output_dir={tmp_path / 'out'}",
        f"run.device={cuda_device}",
        "run.strategy=fsdp",
        "run.amp=True",
        "run.autocast_dtype=bf16",
        "run.max_epoch=1",
        "model.get_lora=True",
        nproc=1,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    job = job_dir(tmp_path / "out")
    losses = [r["loss"] for r in steps(job)]
    assert losses and all(torch.isfinite(torch.tensor(x)) for x in losses)
    assert (job / "checkpoint_0.pth").exists()
