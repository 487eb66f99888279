import argparse

import pytest
from omegaconf import OmegaConf

import lavis  # noqa: F401
from lavis.common.config import Config, ConfigError, load_yaml

TINY = "lavis/projects/instruction_tuning/train_tiny.yaml"
REAL = "lavis/projects/instruction_tuning/train.yaml"


def make(path, *options):
    return Config(argparse.Namespace(cfg_path=path, options=list(options)))


def test_model_defaults_merge_under_run_config():
    cfg = make(TINY)
    # from the tiny model's default YAML
    assert cfg.model_cfg.num_query_token == 8
    assert cfg.model_cfg.vit_arch.embed_dim == 96
    # schema default for a key nobody set
    assert cfg.model_cfg.lora_r == 8
    # dataset defaults merged under the (empty) run section
    assert cfg.datasets_cfg.shapes_instruction.build_info.annotations.val.storage.endswith("val.json")
    assert cfg.run_cfg.valid_splits == ["val"]


def test_real_recipe_keeps_the_original_keys_and_values():
    cfg = make(REAL)
    m = cfg.model_cfg
    assert (m.arch, m.model_type, m.vit_model, m.image_size, m.num_query_token) == (
        "minigpt4qwen",
        "qwen7b_chat",
        "eva_clip_g",
        224,
        32,
    )
    assert m.use_grad_checkpoint is True and m.vit_precision == "fp16" and m.max_txt_len == 256
    assert m.freeze_vit and m.freeze_qformer and m.freeze_queries and not m.freeze_proj
    r = cfg.run_cfg
    assert (r.init_lr, r.min_lr, r.warmup_steps, r.accum_grad_iters, r.max_epoch) == (1e-4, 1e-6, 500, 16, 10)
    assert set(cfg.datasets_cfg) == {"minigpt4_instruction", "llava_instruction"}
    assert cfg.datasets_cfg.llava_instruction.vis_processor.train.name == "blip2_image_train"


def test_command_line_options_override():
    cfg = make(TINY, "run.max_epoch=2", "model.max_txt_len=128", "datasets.shapes_instruction.generator.num_train=10")
    assert cfg.run_cfg.max_epoch == 2
    assert cfg.model_cfg.max_txt_len == 128
    assert cfg.datasets_cfg.shapes_instruction.generator.num_train == 10


def test_unknown_key_names_the_key_and_lists_valid_ones():
    with pytest.raises(ConfigError) as err:
        make(TINY, "run.max_epochs=2")
    message = str(err.value)
    assert "run.max_epochs" in message and "max_epoch" in message and "batch_size_train" in message


def test_unknown_nested_key():
    with pytest.raises(ConfigError) as err:
        make(TINY, "model.vit_arch.layers=3")
    assert "model.vit_arch.layers" in str(err.value) and "depth" in str(err.value)


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError) as err:
        make(TINY, "run.batch_size_train=many")
    assert str(err.value) == (
        "config key 'run.batch_size_train': Value 'many' of type 'str' could not be converted to Integer"
    )  # a wrong value, not a wrong key: no list of the valid keys


def test_a_yaml_syntax_error_is_one_line_naming_the_file_and_place(tmp_path):
    (tmp_path / "bad.yaml").write_text("model:\n  arch: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path / "bad.yaml")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"cannot parse config file {tmp_path / 'bad.yaml'}: ")
    assert "line 3, column 1" in message


def test_unknown_top_level_section():
    with pytest.raises(ConfigError, match="unknown top-level key"):
        Config.build(OmegaConf.create({"modle": {}}))


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found"):
        make("no/such/file.yaml")


def test_unknown_model_type():
    with pytest.raises(ValueError, match="unknown model_type 'huge'"):
        make(TINY, "model.model_type=huge")


def test_the_originals_unused_keys_load_and_are_dropped(tmp_path):
    """The original's YAML carries keys nothing here reads: accepted, then absent from the config."""
    original = OmegaConf.load(REAL)
    original.model.llm_device_map = "cpu"
    original.model.apply_lemmatizer = False
    original.run.world_size = 1
    original.datasets.minigpt4_instruction.data_type = "images"
    original.datasets.minigpt4_instruction.build_info = {
        "annotations": {"train": {"url": "https://example.invalid/a.json", "storage": "a.json"}},
        "images": {"url": None, "storage": "image"},
    }
    path = tmp_path / "original.yaml"
    OmegaConf.save(original, path)
    cfg = make(str(path))
    assert "llm_device_map" not in cfg.model_cfg and "apply_lemmatizer" not in cfg.model_cfg
    assert "world_size" not in cfg.run_cfg
    dataset = cfg.datasets_cfg.minigpt4_instruction
    assert "data_type" not in dataset and "url" not in dataset.build_info.images
    assert dict(dataset.build_info.annotations.train) == {"storage": "a.json"}
    with pytest.raises(ConfigError, match="run.world_sizes"):  # a misspelt key is still an error
        make(str(path), "run.world_sizes=2")


def test_a_dataset_processor_of_another_size_than_the_model_is_a_config_error():
    with pytest.raises(
        ConfigError,
        match=r"'datasets.shapes_instruction.vis_processor.train.image_size' is 64 but 'model.image_size' is 96",
    ):
        make(TINY, "model.image_size=96")
    assert make(
        TINY,
        "model.image_size=96",
        *[f"datasets.shapes_instruction.vis_processor.{s}.image_size=96" for s in ("train", "eval")],
    )


@pytest.mark.parametrize(
    "path, released",
    [
        ("lavis/projects/pretrain/qwen7b_chat_llava558k.yaml", "llava/blip_laion_cc_sbu_558k.json"),
        ("lavis/projects/pretrain/qwen2_5_7b_instruct_llava558k.yaml", "llava/blip_laion_cc_sbu_558k.json"),
        ("lavis/projects/sft/qwen7b_chat_llava665k.yaml", "llava/llava_v1_5_mix665k.json"),
        ("lavis/projects/sft/qwen2_5_7b_instruct_llava665k.yaml", "llava/llava_v1_5_mix665k.json"),
    ],
)
def test_the_two_stage_recipes_name_every_missing_file_at_once(path, released, tmp_path, monkeypatch):
    from lavis.common.errors import MissingFilesError
    from lavis.common.registry import registry
    from lavis.tasks import setup_task

    monkeypatch.setitem(registry.mapping["path"], "cache_root", str(tmp_path))  # an empty cache
    cfg = make(path)
    with pytest.raises(MissingFilesError) as err:
        setup_task(cfg).check_files(cfg)
    keys = [key for key, _, _ in err.value.missing]
    assert {"vit_ckpt", "pretrained", "llm_model"} <= set(keys) and any(released in p for _, p, _ in err.value.missing)
    if "/sft/" in path:  # stage 2 starts from stage 1's output folder, on instructions + videos
        assert any("videochatgpt/videochatgpt_instruct_100k.json" in p for _, p, _ in err.value.missing)
        assert cfg.model_cfg.load_finetuned and cfg.model_cfg.finetuned.startswith("output/pretrain/")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("run.batch_size_train=0", "run.batch_size_train = 0: must be an integer >= 1"),
        ("run.batch_size_eval=-3", "run.batch_size_eval = -3: must be an integer >= 1"),
        ("run.accum_grad_iters=0", "run.accum_grad_iters = 0: must be an integer >= 1"),
        ("run.num_workers=-1", "run.num_workers = -1: must be an integer >= 0"),
        ("run.max_epoch=0", "run.max_epoch = 0: must be an integer >= 1"),
        ("run.betas=[0.9]", "run.betas = [0.9]: must be a list of 2 items, each a number in [0, 1)"),
        ("run.betas=[0.9,1.0]", "run.betas = [0.9, 1.0]: must be a list of 2 items, each a number in [0, 1)"),
        ("run.init_lr=-0.1", "run.init_lr = -0.1: must be a number >= 0"),
        ("run.min_lr=nan", "run.min_lr = nan: must be a number >= 0"),
        ("run.warmup_lr=inf", "run.warmup_lr = inf: must be a number >= 0"),
        ("run.grad_norm_clip=0", "run.grad_norm_clip = 0.0: must be a number > 0 (or null)"),
        ("run.seed=4294967296", "run.seed = 4294967296: must be an integer in 0..4294967295"),
        ("run.device=gpu0", "run.device = 'gpu0': must be cpu, cuda, cuda:N (a GPU's index) or mps"),
        ("run.autocast_dtype=fp8", "run.autocast_dtype = 'fp8': must be one of 'bf16', 'fp16'"),
        ("run.num_beams=0", "run.num_beams = 0: must be an integer in 1..16"),
        ("run.max_new_tokens=0", "run.max_new_tokens = 0: must be an integer in 1..16384"),
        ("run.lr_sched=cosine", "run.lr_sched = 'cosine': must be one of 'constant_lr', 'linear_warmup_cosine_lr'"),
        ("run.runner=fast", "run.runner = 'fast': must be one of 'runner_base'"),
        ("run.cached_features_dtype=int8", "run.cached_features_dtype = 'int8': must be one of 'fp32', 'bf16', 'fp16'"),
        ("model.max_txt_len=-5", "model.max_txt_len = -5: must be an integer >= 1"),
        ("model.autocast_dtype=fp32", "model.autocast_dtype = 'fp32': must be one of 'bf16', 'fp16'"),
        ("model.lora_dropout=1.0", "model.lora_dropout = 1.0: must be a number in [0, 1)"),
        ("model.llm_arch.num_layers=0", "model.llm_arch.num_layers = 0: must be an integer >= 1"),
        ("model.qformer_arch.dropout=-0.1", "model.qformer_arch.dropout = -0.1: must be a number in [0, 1)"),
        ("model.label_rule=all", "model.label_rule = 'all': must be one of '', 'assistant', 'original'"),
        (
            "model.image_size=60",
            "model.image_size = 60: must be a multiple of the ViT's patch size 8 (model.vit_arch.patch_size)",
        ),
        ("model.llm_arch.num_heads=5", "model.llm_arch.num_heads = 5: must divide model.llm_arch.hidden_size (128)"),
        ("model.vit_arch.num_heads=5", "model.vit_arch.num_heads = 5: must divide model.vit_arch.embed_dim (96)"),
        (
            "datasets.shapes_instruction.max_skipped_share=1.5",
            "datasets.shapes_instruction.max_skipped_share = 1.5: must be a number in [0, 1]",
        ),
    ],
)
def test_a_value_out_of_range_names_the_key_the_value_and_what_is_allowed(option, message):
    with pytest.raises(ConfigError) as caught:
        make(TINY, option)
    assert str(caught.value) == f"config: {message}"


def test_every_shipped_config_is_in_range():
    import glob

    paths = sorted(glob.glob("lavis/projects/**/*.yaml", recursive=True))
    assert len(paths) > 10
    for path in paths:
        make(path)


def test_a_config_or_section_that_is_not_a_mapping_is_named(tmp_path):
    (tmp_path / "list.yaml").write_text("- model\n- run\n")
    with pytest.raises(ConfigError, match=r"^config file: must be a mapping of model, datasets, run, not a list$"):
        make(str(tmp_path / "list.yaml"))
    (tmp_path / "model5.yaml").write_text("model: 5\n")
    with pytest.raises(ConfigError, match=r"^config file: 'model' must be a mapping of keys to values, not 5 \(int\)$"):
        make(str(tmp_path / "model5.yaml"))
    with pytest.raises(ConfigError, match=r"^--options: 'datasets' must be a mapping of keys to values, not a list$"):
        make(TINY, "datasets=[1]")
