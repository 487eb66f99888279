"""`python -m lavis.tools.memory_plan`: the model built from shapes alone, the plan's rows, its CLI,
and (slow) its estimate against peaks measured on CPU with 2 gloo ranks (benchmarks/memory_plan_check.py)."""

import os

import pytest
import torch
from omegaconf import OmegaConf

from benchmarks import memory_plan_check  # the repository root is on sys.path (pytest's pythonpath)
from lavis.common.config import Config
from lavis.common.utils import resolve_path
from lavis.models import load_model
from lavis.tools import memory_plan
from tests.helpers.entry import run_in_process

SFT = "lavis/projects/sft/qwen7b_chat_llava665k.yaml"


def config(path, *options):
    return Config(OmegaConf.create({"cfg_path": path, "options": list(options)}))


def tiny_config(tmp_path, **run):
    path = tmp_path / "tiny.yaml"
    OmegaConf.save(OmegaConf.create({"model": {"arch": "minigpt4qwen", "model_type": "tiny"}, "run": run}), path)
    return str(path)


def counts(module):
    return sum(p.numel() for p in module.parameters())


def test_the_real_sft_model_is_built_from_shapes_alone():
    """Qwen-7B-Chat's 7.72 B parameters in bf16 and EVA-ViT-G's 0.99 B (39 blocks) in fp16, on the
    meta device, with none of the config's weight or config files on disk."""
    assert not os.path.exists(resolve_path("ckpt/Qwen7B-chat/config.json"))
    assert not os.path.exists(resolve_path("ckpt/eva/eva_vit_g.pth"))
    model, sources = memory_plan.meta_model(config(SFT).model_cfg)
    assert all(p.is_meta for p in model.parameters())
    assert counts(model.llm_model) == 7_721_324_544  # 32 layers x 4096, MLP 11008, vocab 151,936
    assert {p.dtype for p in model.llm_model.parameters()} == {torch.bfloat16}
    # 39 blocks x 25,250,176 (qkv + bias, projection, MLP 1408 -> 6144 -> 1408, 2 LayerNorms)
    # + patch embedding 829,312 + class token 1,408 + 257 positions x 1408
    assert counts(model.visual_encoder) == 985_949_440
    assert model.visual_encoder.encoder.layers[0].mlp.fc1.weight.dtype == torch.float16
    assert 100e6 < counts(model.Qformer) < 110e6  # BERT-base's query side with cross-attention
    assert "published config.json" in sources["LLM"] and "BERT-base" in sources["Q-former"]
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"llm_model", "llm_proj"}  # the SFT recipe: LLM and projection train


@pytest.mark.parametrize("options", [{}, {"get_lora": True, "freeze_llm": True, "freeze_vit": True}])
def test_shapes_dtypes_and_freezing_are_the_real_models(tmp_path, options):
    """On the tiny config the meta model has the real model's parameters: names, shapes, dtypes, trainability."""
    cfg = config(tiny_config(tmp_path), *(f"model.{k}={v}" for k, v in options.items()))
    meta, _ = memory_plan.meta_model(cfg.model_cfg)
    real = load_model("minigpt4qwen", "tiny", cfg_options=options)

    def table(model):
        return [(n, tuple(p.shape), p.dtype, p.requires_grad) for n, p in model.named_parameters()]

    assert sorted(table(meta)) == sorted(table(real))


def saved_bytes(run, params):
    """Bytes of the distinct storages autograd saves for backward while `run()` runs, parameters excepted."""
    own, seen = {p.untyped_storage().data_ptr() for p in params}, {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(seen.values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind, dropout", [("full", 0.0), ("lora", 0.0), ("lora", 0.1), ("frozen", 0.0)])
def test_llm_layer_formula_is_what_autograd_saves(dtype, kind, dropout):
    """One Qwen2 decoder layer on CPU: the per-token formula against the saved tensors, within 1%
    (the rest: the rotary tables, shared by every layer)."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config
    from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2RotaryEmbedding

    h, inter, heads, batch, length = 256, 704, 4, 4, 48
    config = Qwen2Config(
        hidden_size=h, intermediate_size=inter, num_attention_heads=heads, num_key_value_heads=heads, vocab_size=64
    )
    config._attn_implementation = "sdpa"
    holder = torch.nn.Module()
    holder.layer = Qwen2DecoderLayer(config, 0).to(dtype)
    if kind != "full":
        holder.requires_grad_(False)
    if kind == "lora":
        lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=dropout, target_modules=["q_proj", "v_proj"])
        holder = get_peft_model(holder, lora).base_model.model
    layer = holder.layer.train()
    x = torch.randn(batch, length, h, dtype=dtype, requires_grad=True) * 1.0  # a non-leaf, as between layers
    cos_sin = Qwen2RotaryEmbedding(config)(x, torch.arange(length)[None])
    traced = saved_bytes(lambda: layer(x, attention_mask=None, position_embeddings=cos_sin), layer.parameters())
    formula = memory_plan.llm_layer_bytes(layer, dtype.itemsize, h, h, inter, heads, dropout, mask_bytes=None)
    assert abs(formula * batch * length / traced - 1) < 0.01, (formula * batch * length, traced)


def test_fsdp_shards_and_offload_moves_the_state_to_the_host(tmp_path):
    cfg_path = tiny_config(tmp_path, device="cuda", strategy="fsdp", amp=True)
    ddp = memory_plan.plan_memory(config(cfg_path, "run.strategy=ddp"), 2, 24)
    fsdp = memory_plan.plan_memory(config(cfg_path), 2, 24)
    offload = memory_plan.plan_memory(config(cfg_path, "run.fsdp_cpu_offload=True"), 2, 24)

    def row(plan, start):
        (found,) = [r for r in plan.rows if r.label.startswith(start)]
        return found

    params = row(ddp, "parameters, trainable").device
    assert params == 4 * sum(p.numel() for p in load_model("minigpt4qwen", "tiny").parameters())
    assert params / 2 <= row(fsdp, "parameters, trainable").device < params / 2 * 1.01  # ceil(d0 / 2) rows
    assert row(ddp, "DDP gradient buckets").device == params and not any("DDP" in r.label for r in fsdp.rows)
    for start in ("parameters, trainable", "gradients", "optimizer states"):
        assert row(offload, start).device == 0 and row(offload, start).host == row(fsdp, start).device
    assert offload.peak < fsdp.peak < ddp.peak and offload.host > 0
    assert "CPU offload" in offload.title and "fsdp over 2 ranks" in fsdp.title
    accum = memory_plan.plan_memory(config(cfg_path, "run.accum_grad_iters=4"), 2, 24)
    # each micro-batch reduce-scatters: accumulating keeps only the sharded gradients alive
    assert fsdp.peak < accum.peak <= fsdp.peak + row(fsdp, "gradients").device
    on_cpu = memory_plan.plan_memory(config(cfg_path, "run.device=cpu", "run.fsdp_cpu_offload=True"), 2, 24)
    assert on_cpu.host == 0 and any("a CPU device" in note for note in on_cpu.notes)


def run_cli(*args):
    return run_in_process("lavis.tools.memory_plan", *args, module=True)


def test_cli_prints_the_plan_of_the_real_sft_config():
    proc = run_cli("--cfg-path", SFT, "--gpus", "8", "--gpu-mem-gb", "80")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "fsdp over 8 ranks" in out and "batch 8 x 2048 tokens" in out
    assert "LLM          7.72 B  bf16 7.72 B, trains" in out
    assert "ViT        985.95 M  fp16 985.37 M, fp32 582.91 K, frozen" in out
    for row in ("parameters, trainable", "gradients", "optimizer states", "FSDP gathered", "activations, LLM"):
        assert row in out
    assert "logits at the loss (16376 positions x 151936 x 3 fp32)" in out
    assert out.count(" GiB per GPU: ") == 1 and ("GiB per GPU: fits" in out or "GiB per GPU: does not fit" in out)


def test_sft_plans_with_accumulation_and_offload():
    """The SFT recipe fits 8 x 80 GiB as written (accumulation keeps gradients sharded); offload
    moves the shards to the host; at batch 1 the recipe fits 2 x 24 GiB with offload."""
    assert memory_plan.plan_memory(config(SFT, "run.accum_grad_iters=2"), 8, 80).fits
    base = ("run.fsdp_cpu_offload=True",)
    offload = memory_plan.plan_memory(config(SFT, *base), 2, 24)
    assert not offload.fits  # batch 8 x 2048: activations and logits alone exceed 24 GiB
    small = memory_plan.plan_memory(config(SFT, *base, "run.batch_size_train=1", "run.accum_grad_iters=1"), 2, 24)
    assert small.fits
    assert small.phases["start"] > small.peak  # the whole bf16 model on the GPU before sharding decides
    assert 30 * 1024**3 < small.host < 32 * 1024**3  # shards, gradients and AdamW moments of 1/2 of 8.8 B


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gpus", "0", "--gpu-mem-gb", "80"], "error: --gpus must be a whole number of at least 1, got '0'"),
        (["--gpus", "two", "--gpu-mem-gb", "80"], "error: --gpus must be a whole number of at least 1, got 'two'"),
        (["--gpus", "2", "--gpu-mem-gb", "-1"], "error: --gpu-mem-gb must be a positive number, got '-1'"),
    ],
)
def test_bad_values_are_one_error_line(args, message, capsys):
    assert memory_plan.main(["--cfg-path", SFT, *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == message + "\n"


def test_offload_with_ddp_is_one_error_line():
    proc = run_cli(
        "--cfg-path",
        SFT,
        "--gpus",
        "2",
        "--gpu-mem-gb",
        "24",
        "--options",
        "run.strategy=ddp",
        "run.fsdp_cpu_offload=True",
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: config key 'run.fsdp_cpu_offload': True offloads FSDP's shards, but run.strategy is 'ddp': "
        "set run.strategy=fsdp, or drop the key"
    ]


@pytest.mark.slow
def test_estimate_is_within_25_percent_of_the_measured_peak(tmp_path):
    """Each rank's measured peak (RSS growth over the baseline, see benchmarks/memory_plan_check.py)
    against the plan for the same config: ddp, fsdp, fsdp with grad checkpointing (the benchmark
    also runs accumulation, and offload, which is the fsdp run again on a CPU device)."""
    variants = ["ddp", "fsdp", "fsdp_ckpt"]  # accumulation and offload: the benchmark prints them
    results = memory_plan_check.check(variants, 4, str(tmp_path))
    assert len(results) == 2 * len(variants)
    for name, rank, planned, measured, _ in results:
        assert measured > 100 * 1024**2, (name, rank, measured)  # the model's state, not the interpreter
        assert abs(planned / measured - 1) <= 0.25, (name, rank, planned, measured)
    by_variant = {name: measured for name, rank, _, measured, _ in results if rank == 0}
    assert by_variant["fsdp"] < 0.8 * by_variant["ddp"]  # sharding shows in what was measured
    assert by_variant["fsdp_ckpt"] < by_variant["fsdp"]
