"""lavis.tools.merge_lora on a real tiny LoRA run: the merged model computes what the LoRA model does."""

import json

import pytest
import torch
from omegaconf import OmegaConf

from lavis.common.config import Config
from lavis.common.registry import registry
from lavis.datasets.datasets.instruction_dataset import InstructionDataset
from lavis.tools.merge_lora import main
from tests.helpers.runs import make_runner, run_config


@pytest.fixture(scope="module")
def lora_run(shapes_root, tmp_path_factory):
    """5 LoRA training iterations of the tiny model (adapters moved well off zero), merged once."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("lora_run")
    cfg = run_config(shapes_root, out, max_epoch=1, valid_splits=[], init_lr=1e-2)
    cfg.config.model.get_lora = True
    runner = make_runner(cfg)
    runner.train()
    ckpt = out / "job" / "checkpoint_0.pth"
    assert main(["--ckpt-path", str(ckpt), "--output-dir", str(out / "merged")]) == 0
    batch = InstructionDataset.collater([runner._split("train")[i] for i in range(4)])
    return {
        "model": runner.model.eval(),
        "cfg": cfg,
        "ckpt": ckpt,
        "merged": out / "merged",
        "batch": batch,
        "job": out / "job",
    }


def outputs(model, batch):
    """(loss, full logits of the first sample's prompt, greedy replies) of `model` on `batch`."""
    model.eval()
    with torch.no_grad():
        loss = model(dict(batch))["loss"]
        conv = batch["conversations"][0]
        ids, _ = model.prompt.generation_ids(conv[0]["value"] if isinstance(conv, list) else conv, [])
        embeds = model.embed_with_images(torch.tensor([ids]), model.encode_image(batch["image"][:1]))
        logits = model.llm_model(inputs_embeds=embeds).logits
    replies = model.generate_from_ids(
        [ids], batch["image"][:1], max_new_tokens=8, min_new_tokens=8
    )  # no early stop: 8 compared tokens
    return loss, logits, replies


def assert_same(merged, reference, batch):
    loss, logits, replies = outputs(merged, batch)
    ref_loss, ref_logits, ref_replies = outputs(reference, batch)
    assert abs(loss.item() - ref_loss.item()) < 1e-5
    assert torch.allclose(logits, ref_logits, atol=1e-5, rtol=0)
    assert replies == ref_replies and len(replies[0]) == 8


def test_merged_checkpoint_has_no_lora_keys_and_folded_weights(lora_run):
    merged = torch.load(lora_run["merged"] / "checkpoint_merged.pth", weights_only=True)
    state, lora = merged["model"], lora_run["model"].state_dict()
    assert merged["config"]["model"]["get_lora"] is False
    assert not any("lora_" in k or "base_layer" in k or "base_model" in k for k in state)
    assert "llm_proj.weight" in state and "llm_model.model.layers.1.self_attn.v_proj.weight" in state
    prefix = "llm_model.base_model.model.model.layers.0.self_attn.q_proj."
    a, b = lora[prefix + "lora_A.default.weight"], lora[prefix + "lora_B.default.weight"]
    scale = lora_run["cfg"].model_cfg.lora_alpha / lora_run["cfg"].model_cfg.lora_r
    expected = lora[prefix + "base_layer.weight"] + scale * b @ a
    assert b.abs().max() > 1e-3  # training moved the adapters: the merge is not a no-op
    assert torch.allclose(state["llm_model.model.layers.0.self_attn.q_proj.weight"], expected, atol=1e-6)


def test_merged_checkpoint_on_a_get_lora_false_model_equals_the_lora_model(lora_run):
    cfg = lora_run["cfg"].config.model.copy()
    cfg.get_lora = False
    torch.manual_seed(123)  # other initial weights: everything must come from the merged checkpoint
    model = registry.get_model_class("minigpt4qwen").from_config(cfg)
    model.load_checkpoint(str(lora_run["merged"] / "checkpoint_merged.pth"))
    assert_same(model, lora_run["model"], lora_run["batch"])


def test_written_config_loads_the_merged_llm_folder(lora_run):
    cfg = Config(type("Args", (), {"cfg_path": str(lora_run["merged"] / "config.yaml"), "options": []}))
    assert cfg.model_cfg.llm_model == str(lora_run["merged"] / "llm") and cfg.model_cfg.llm_arch is None
    assert (lora_run["merged"] / "llm" / "model.safetensors").exists() and (
        lora_run["merged"] / "llm" / "qwen.tiktoken"
    ).exists()
    torch.manual_seed(123)
    model = registry.get_model_class("minigpt4qwen").from_config(cfg.model_cfg)
    assert not hasattr(model.llm_model, "peft_config")
    assert_same(model, lora_run["model"], lora_run["batch"])


def test_saved_config_json_and_llm_only_format(lora_run, tmp_path):
    args = [
        "--ckpt-path",
        str(lora_run["ckpt"]),
        "--output-dir",
        str(tmp_path),
        "--format",
        "llm",
        "--cfg-path",
        str(lora_run["job"] / "config.json"),
    ]
    assert main(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["llm"]
    cfg = lora_run["cfg"].config.model.copy()
    cfg.update(get_lora=False, llm_arch=None, llm_tokenizer="", llm_model=str(tmp_path / "llm"))
    model = registry.get_model_class("minigpt4qwen").from_config(cfg)
    model.load_checkpoint({k: v for k, v in lora_run["model"].state_dict().items() if not k.startswith("llm_model.")})
    assert_same(model, lora_run["model"], lora_run["batch"])


def one_line_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_checkpoint_without_lora_weights(tmp_path, capsys):
    torch.save({"model": {"llm_proj.weight": torch.zeros(2, 2)}}, tmp_path / "plain.pth")
    err = one_line_error(capsys, ["--ckpt-path", str(tmp_path / "plain.pth"), "--output-dir", str(tmp_path / "o")])
    assert "holds no LoRA weights" in err and not (tmp_path / "o").exists()


def test_missing_files(tmp_path, capsys, lora_run):
    err = one_line_error(capsys, ["--ckpt-path", str(tmp_path / "nope.pth"), "--output-dir", str(tmp_path / "o")])
    assert "checkpoint not found" in err and "nope.pth" in err
    err = one_line_error(
        capsys,
        [
            "--ckpt-path",
            str(lora_run["ckpt"]),
            "--output-dir",
            str(tmp_path / "o"),
            "--cfg-path",
            str(tmp_path / "no.yaml"),
        ],
    )
    assert "config file not found" in err
    err = one_line_error(
        capsys,
        [
            "--ckpt-path",
            str(lora_run["ckpt"]),
            "--output-dir",
            str(tmp_path / "o"),
            "--options",
            "model.llm_arch=null",
            "model.llm_model=/nowhere/qwen",
        ],
    )
    assert "missing" in err and "/nowhere/qwen" in err


def test_mismatched_config(tmp_path, capsys, lora_run):
    base = ["--ckpt-path", str(lora_run["ckpt"]), "--output-dir", str(tmp_path / "o")]
    err = one_line_error(capsys, base + ["--options", "model.get_lora=False"])
    assert "model.get_lora: False" in err
    err = one_line_error(capsys, base + ["--options", "model.lora_r=4"])
    assert "does not fit the config" in err and "shape mismatches" in err
    user = json.loads((lora_run["job"] / "config.json").read_text())
    user["model"]["lora_target_modules"] = ["q_proj"]
    (tmp_path / "other.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(user)))
    err = one_line_error(capsys, base + ["--cfg-path", str(tmp_path / "other.yaml")])
    assert "does not fit the config" in err and "v_proj.lora_A" in err
