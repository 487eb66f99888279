"""run.strategy=fsdp (FSDP2) through torchrun on CPU (2 gloo processes): the same training as DDP.

Both strategies average the same gradients, so in fp32 each logged loss of the FSDP run equals
the DDP run's (measured: identical to the 6 printed digits; weights within 2e-7).  The LoRA
run puts frozen base weights and trainable adapters in one FSDP unit; the full run
(`freeze_llm: False`, the tiny default) shards the trainable ViT and Q-former layers too.
Checkpoints are full state dicts that load in one process and chat; resume (from an fsdp or a
ddp checkpoint) continues the uninterrupted run's curve.  `run.fsdp_cpu_offload` on a CPU device
passes FSDP2's CPUOffloadPolicy all the same: nothing moves, so the full run takes it and still
follows DDP's curve.
"""

import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers.chat import build_model
from tests.helpers.distributed import job_dir, steps, torchrun, write_config

# 5 micro-batches per rank: 2 synced steps + 1 tail; no LoRA dropout, so that a resumed run
# (whose random stream restarts from run.seed) computes exactly the uninterrupted run's losses
LORA = ("model.get_lora=True", "model.lora_dropout=0.0", "run.accum_grad_iters=2")
CHAT_QUESTION = "What colour is the shape?"


def run(cfg_path, out, *options):
    proc = torchrun(cfg_path, f"run.output_dir={out}", *options)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc, job_dir(out)


def losses(job):
    return [(r["epoch"], r["iter"], r["loss"]) for r in steps(job)]


@pytest.fixture(scope="module")
def runs(shapes_root, tmp_path_factory):
    """LoRA: ddp and fsdp (2 epochs, fsdp also evaluates); full LLM: ddp, and fsdp with
    run.fsdp_cpu_offload (1 epoch; on a CPU device the offload policy has nothing to move, so
    this is also the plain full-FSDP run: one torchrun less in the suite)."""
    tmp = tmp_path_factory.mktemp("fsdp")
    cfg_path = write_config(shapes_root, tmp)
    out = {"cfg": cfg_path, "tmp": tmp}
    out["ddp"] = run(cfg_path, tmp / "ddp", "run.strategy=ddp", *LORA)
    out["fsdp"] = run(
        cfg_path, tmp / "fsdp", "run.strategy=fsdp", *LORA, "run.valid_splits=[val]", "run.save_freq_iters=1"
    )
    out["full_ddp"] = run(cfg_path, tmp / "full_ddp", "run.strategy=ddp", "run.max_epoch=1")
    out["full_fsdp"] = run(
        cfg_path, tmp / "full_fsdp", "run.strategy=fsdp", "run.max_epoch=1", "run.fsdp_cpu_offload=True"
    )
    return out


def assert_same_weights(job_a, job_b, epoch):
    a = torch.load(job_a / f"checkpoint_{epoch}.pth", weights_only=True)
    b = torch.load(job_b / f"checkpoint_{epoch}.pth", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for name, value in a["model"].items():
        assert b["model"][name].shape == value.shape and not b["model"][name].is_meta
        torch.testing.assert_close(b["model"][name], value, atol=1e-5, rtol=1e-4, msg=name)
    return a, b


@pytest.mark.slow
@pytest.mark.parametrize("name", ["", "full_"])
def test_fsdp_loss_curve_and_weights_equal_ddp(runs, name):
    (_, ddp_job), (_, fsdp_job) = runs[f"{name}ddp"], runs[f"{name}fsdp"]
    ddp_losses, fsdp_losses = losses(ddp_job), losses(fsdp_job)
    assert len(fsdp_losses) == len(ddp_losses) == (10 if not name else 5)
    for a, b in zip(ddp_losses, fsdp_losses):
        assert a[:2] == b[:2] and abs(a[2] - b[2]) < 1e-5, (a, b)
    assert fsdp_losses[-1][2] < fsdp_losses[0][2]  # it learns
    ddp_ckpt, fsdp_ckpt = assert_same_weights(ddp_job, fsdp_job, epoch=0)
    if name:  # full LLM: the ViT's k bias stays exactly zero under FSDP as well (eva_vit's mask)
        bias = fsdp_ckpt["model"]["visual_encoder.encoder.layers.0.self_attn.qkv.bias"]
        assert torch.count_nonzero(bias[96:192]) == 0 and torch.count_nonzero(bias) > 0
    else:  # LoRA: adapters and the image side are saved, the frozen LLM weights are not
        keys = list(fsdp_ckpt["model"])
        assert any("lora_A" in k for k in keys) and not any(k.endswith("q_proj.base_layer.weight") for k in keys)
    # the optimizer state is full (not this rank's shard): every tensor has its parameter's shape
    state = fsdp_ckpt["optimizer"]["state"]
    assert sorted(state) == sorted(fsdp_ckpt["model"])
    for key, value in fsdp_ckpt["model"].items():
        assert state[key]["exp_avg"].shape == value.shape


@pytest.mark.slow
def test_fsdp_run_evaluates_on_rank_0_and_writes_once(runs):
    proc, job = runs["fsdp"]
    assert sorted(p.name for p in job.iterdir()) == [
        "checkpoint_0.pth",
        "checkpoint_0_iter2.pth",
        "checkpoint_0_iter4.pth",
        "checkpoint_1.pth",
        "checkpoint_1_iter2.pth",
        "checkpoint_1_iter4.pth",
        "config.json",
        "curves.png",
        "log.jsonl",
        "tensorboard",
    ]
    assert proc.stdout.count("held-out exact-match accuracy") == 1
    assert [r for r in steps(job)] and open(job / "log.jsonl").read().count('"eval_split": "val"') == 1


@pytest.mark.slow
def test_fsdp_checkpoint_loads_in_one_process_and_chats(runs, chat_image):
    from lavis.chat import ChatModel, ChatSession, load_image

    replies = {}
    for name in ("ddp", "fsdp"):
        path = runs[name][1] / "checkpoint_1.pth"
        model, vis, _ = build_model(cfg_options={"get_lora": True})
        model.load_checkpoint(str(path))
        saved = torch.load(path, weights_only=True)["model"]
        state = model.state_dict()
        assert all(torch.equal(state[k], v) for k, v in saved.items())
        session = ChatSession(ChatModel(model.eval(), vis["eval"], None, "tiny", torch.device("cpu")))
        session.settings.set("max_new_tokens", 8)
        session.add_images([load_image(chat_image)])
        reply = session.stream(CHAT_QUESTION)
        replies[name] = (reply.collect(), reply.num_tokens)
    assert replies["fsdp"][1] > 0
    assert replies["fsdp"] == replies["ddp"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "source, checkpoint, start",
    [
        ("ddp", "checkpoint_0.pth", (1, 0)),
        ("fsdp", "checkpoint_0_iter2.pth", (0, 2)),
    ],
)
def test_fsdp_resume_continues_the_curve(runs, source, checkpoint, start):
    """Resume from ddp's epoch-0 checkpoint (its index-keyed optimizer state converted at an
    epoch boundary), or from fsdp's mid-epoch one (fsdp's own state, after the first optimizer
    step of epoch 0)."""
    _, job = run(
        runs["cfg"],
        runs["tmp"] / f"resume_{source}_{checkpoint}",
        "run.strategy=fsdp",
        *LORA,
        f"run.resume_ckpt_path={runs[source][1] / checkpoint}",
    )
    uninterrupted = [x for x in losses(runs["fsdp"][1]) if x[:2] >= start]
    resumed = losses(job)
    assert len(resumed) == len(uninterrupted) == 10 - 5 * start[0] - start[1]
    for a, b in zip(uninterrupted, resumed):
        assert a[:2] == b[:2] and abs(a[2] - b[2]) < 1e-5, (a, b)
    assert_same_weights(runs["fsdp"][1], job, epoch=1)


@pytest.mark.slow
def test_fsdp_cpu_offload_on_cpu_says_so_once(runs):
    """On a CPU device the offload policy has nothing to move (the full run above, with it,
    follows ddp's curve): one log line says so, and the policy is still passed."""
    proc, _ = runs["full_fsdp"]
    assert proc.stderr.count("run.fsdp_cpu_offload on a CPU device: the shards are in host memory already") == 1
    assert "shards and optimizer step on the CPU" in proc.stderr


def test_fsdp_cpu_offload_needs_fsdp():
    from lavis.common.config import Config, ConfigError

    model = {"arch": "minigpt4qwen", "model_type": "tiny"}
    user = OmegaConf.create({"model": model, "run": {"fsdp_cpu_offload": True}})
    with pytest.raises(ConfigError) as err:
        Config.build(user)
    assert str(err.value) == (
        "config key 'run.fsdp_cpu_offload': True offloads FSDP's shards, but run.strategy is 'ddp': "
        "set run.strategy=fsdp, or drop the key"
    )
    ok = Config.build(OmegaConf.create({"model": model, "run": {"fsdp_cpu_offload": True, "strategy": "fsdp"}}))
    assert ok.run.fsdp_cpu_offload is True
    assert Config.build(OmegaConf.create({"model": model})).run.fsdp_cpu_offload is False


@pytest.mark.parametrize("offload, backend", [(False, "nccl"), (True, "cpu:gloo,cuda:nccl")])
def test_cuda_process_group_has_a_cpu_backend_for_offloaded_shards(monkeypatch, offload, backend):
    """Collectives on offloaded (CPU) shards need gloo next to NCCL; what init_process_group is
    asked for on CUDA (no GPU here: the calls are recorded, not made)."""
    from lavis.common import dist_utils

    calls = []
    for name in dist_utils.TORCHRUN_VARS:
        monkeypatch.setenv(name, "0")
    monkeypatch.setattr(dist_utils.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dist_utils.torch.cuda, "set_device", lambda index: None)
    monkeypatch.setattr(dist_utils.dist, "init_process_group", lambda **kwargs: calls.append(kwargs))
    run_cfg = OmegaConf.create({"device": "cuda", "strategy": "fsdp", "fsdp_cpu_offload": offload})
    assert dist_utils.init_distributed_mode(run_cfg) is True
    assert [c["backend"] for c in calls] == [backend]


def test_unknown_strategy_is_a_config_error():
    from lavis.common.config import Config, ConfigError

    user = OmegaConf.create({"model": {"arch": "minigpt4qwen", "model_type": "tiny"}, "run": {"strategy": "zero3"}})
    with pytest.raises(ConfigError, match=r"^config: run.strategy = 'zero3': must be one of 'ddp', 'fsdp'$"):
        Config.build(user)
    assert (
        Config.build(OmegaConf.create({"model": {"arch": "minigpt4qwen", "model_type": "tiny"}})).run.strategy == "ddp"
    )


def test_fsdp_units_are_the_llm_layers_and_the_trainable_image_blocks(tiny_model):
    from lavis.models import load_model
    from lavis.runners.strategies import Sharded

    names = {id(m): n for n, m in tiny_model.named_modules()}
    assert [names[id(m)] for m in Sharded.units(tiny_model)] == [
        "visual_encoder.encoder.layers.0",
        "visual_encoder.encoder.layers.1",
        "Qformer.encoder.layer.0",
        "Qformer.encoder.layer.1",
        "llm_model.model.layers.0",
        "llm_model.model.layers.1",
    ]
    lora = load_model(
        "minigpt4qwen", "tiny", cfg_options={"get_lora": True, "freeze_vit": True, "freeze_qformer": True}
    )
    names = {id(m): n for n, m in lora.named_modules()}
    assert [names[id(m)] for m in Sharded.units(lora)] == [
        f"llm_model.base_model.model.model.layers.{i}" for i in range(2)
    ]


def test_optimizer_state_converts_between_index_and_name_keys(tiny_model):
    from lavis.runners.runner_base import param_groups
    from lavis.runners.strategies import keyed_by_index, keyed_by_name, param_names

    optimizer = torch.optim.AdamW(param_groups(tiny_model, 0.05), lr=1e-3)
    image = torch.zeros(1, 3, 64, 64)
    conversation = [{"from": "user", "value": "<Img><ImageHere></Img> hi"}, {"from": "assistant", "value": "red"}]
    tiny_model({"image": image, "conversations": [conversation]})["loss"].backward()
    optimizer.step()
    names = param_names(tiny_model, optimizer)
    assert len(names) == len(set(names)) == sum(1 for p in tiny_model.parameters() if p.requires_grad)
    by_index = optimizer.state_dict()
    by_name = keyed_by_name(by_index, names)
    assert sorted(by_name["state"]) == sorted(names)
    assert by_name["param_groups"][0]["params"][0] == names[0]
    torch.testing.assert_close(by_name["state"][names[3]]["exp_avg"], by_index["state"][3]["exp_avg"])
    back = keyed_by_index(by_name, names)
    assert back["param_groups"] == by_index["param_groups"] and back["state"].keys() == by_index["state"].keys()
    assert keyed_by_name(by_name, names) is by_name and keyed_by_index(by_index, names) is by_index
