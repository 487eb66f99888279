"""`python -m lavis.tools.cache_features` and `run.use_cached_features` on the tiny model with a frozen image side."""

import json
import shutil

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from lavis.common.config import Config
from lavis.common.registry import registry
from lavis.common.rng import set_seed
from lavis.datasets.cached_features import attach_cached_features, cache_groups
from lavis.datasets.feature_cache import FeatureCacheError, FeatureStore
from lavis.tasks import setup_task
from lavis.tools import cache_features

FROZEN = ["model.freeze_vit=True", "model.freeze_qformer=True", "model.freeze_queries=True"]


@pytest.fixture
def shapes(shapes_root, tmp_path):
    """A private copy of the small shapes set (tests here write caches and edit images)."""
    return shutil.copytree(shapes_root, tmp_path / "shapes")


def write_cfg(shapes, tmp_path):
    cfg = {
        "model": {"arch": "minigpt4qwen", "model_type": "tiny"},
        "datasets": {
            "shapes_instruction": {
                "generator": {"num_train": 40, "num_val": 12, "image_size": 64, "seed": 0},
                "build_info": {
                    "annotations": {
                        "train": {"storage": str(shapes / "train.json")},
                        "val": {"storage": str(shapes / "val.json")},
                    },
                    "images": {"storage": str(shapes / "image")},
                },
            }
        },
        "run": {
            "batch_size_train": 8,
            "batch_size_eval": 5,
            "max_epoch": 1,
            "device": "cpu",
            "threads": 1,
            "output_dir": str(tmp_path / "out"),
            "warmup_steps": 2,
        },
    }
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(cfg))
    return str(path)


def load_cfg(cfg_path, *options):
    return Config(OmegaConf.create({"cfg_path": cfg_path, "options": list(options)}))


def build(cfg):
    """Datasets and model as train.py and the command build them (same seed, same order)."""
    set_seed(cfg.run_cfg.seed)
    task = setup_task(cfg)
    datasets = task.build_datasets(cfg)
    return task, datasets, task.build_model(cfg)


def run_command(cfg_path, *options):
    return cache_features.main(["--cfg-path", cfg_path, "--options", *FROZEN, *options])


def cache_dirs(shapes):
    return sorted(p.name for p in (shapes / "image" / ".feature_cache").iterdir())


def test_cached_features_equal_the_live_qformer_outputs(shapes, tmp_path, capsys):
    cfg_path = write_cfg(shapes, tmp_path)
    assert run_command(cfg_path) == 0
    assert "wrote: " in capsys.readouterr().out
    cfg = load_cfg(cfg_path, *FROZEN)
    _, datasets, model = build(cfg)
    (group,) = cache_groups(cfg, model, datasets, "test")  # train and val share processor and images: one cache
    assert len(group["paths"]) == 52 and len(group["members"]) == 2
    store = FeatureStore(group["folder"], group["paths"])
    val = datasets["shapes_instruction"]["val"]
    paths = val.image_paths()[:3]
    pixels = torch.stack([val.vis_processor(Image.open(shapes / "image" / p).convert("RGB")) for p in paths])
    with torch.no_grad():
        live = model.eval().encode_queries(pixels)
    assert live.shape == (3, 8, 96)
    for i, path in enumerate(paths):
        assert store[path].dtype == torch.float32
        torch.testing.assert_close(store[path], live[i], rtol=0, atol=1e-6)
    # a second run finds the cache complete and leaves it alone
    assert run_command(cfg_path) == 0
    assert "up to date: " in capsys.readouterr().out


def test_a_step_from_the_cache_gives_the_loss_of_a_step_from_images(shapes, tmp_path):
    cfg_path = write_cfg(shapes, tmp_path)
    assert run_command(cfg_path) == 0
    cfg = load_cfg(cfg_path, *FROZEN, "run.use_cached_features=True")
    _, datasets, model = build(cfg)
    train = datasets["shapes_instruction"]["train"]
    from_images = train.collater([train[i] for i in range(8)])
    attach_cached_features(cfg, model, datasets)
    from_cache = train.collater([train[i] for i in range(8)])
    assert from_cache["image"] is None and from_cache["image_features"].shape == (8, 8, 96)
    assert from_images["image_features"] is None
    model.train()
    loss_images = model(from_images)["loss"]
    loss_cache = model(from_cache)["loss"]
    assert abs(loss_images.item() - loss_cache.item()) < 1e-5
    loss_cache.backward()
    assert model.llm_proj.weight.grad is not None and model.llm_proj.weight.grad.abs().sum() > 0


def test_training_and_evaluation_run_from_the_cache_as_from_images(shapes, tmp_path):
    """The whole run (runner, collater, evaluation) from the cache follows the run from images."""
    cfg_path = write_cfg(shapes, tmp_path)
    assert run_command(cfg_path) == 0
    results = {}
    for cached in (False, True):
        cfg = load_cfg(
            cfg_path,
            *FROZEN,
            f"run.use_cached_features={cached}",
            "run.valid_splits=[val]",
            "run.max_new_tokens=4",
            f"run.output_dir={tmp_path / str(cached)}",
        )
        task, datasets, model = build(cfg)
        runner = registry.get_runner_class("runner_base")(cfg, task, model, datasets, "job")
        assert all((d.feature_store is not None) == cached for d in datasets["shapes_instruction"].values())
        accuracy = runner.train()["val"]["accuracy"]
        log = [json.loads(line) for line in open(tmp_path / str(cached) / "job" / "log.jsonl")]
        results[cached] = ([r["loss"] for r in log if "loss" in r], accuracy)
    assert len(results[True][0]) == 5
    assert results[True][0] == pytest.approx(results[False][0], abs=1e-5)
    assert results[True][1] == results[False][1]


def test_processor_settings_encoder_weights_or_image_bytes_change_the_key(shapes, tmp_path, caplog):
    cfg_path = write_cfg(shapes, tmp_path)
    assert run_command(cfg_path) == 0
    cfg = load_cfg(cfg_path, *FROZEN, "run.use_cached_features=True")
    _, datasets, model = build(cfg)
    (folder,) = cache_dirs(shapes)

    # other processor settings: another folder, and the written one is named as stale
    resized = load_cfg(
        cfg_path,
        *FROZEN,
        "run.use_cached_features=True",
        "datasets.shapes_instruction.vis_processor.train.mean=[0.5,0.5,0.5]",
        "datasets.shapes_instruction.vis_processor.eval.mean=[0.5,0.5,0.5]",
    )
    _, other_datasets, _ = build(resized)
    (group,) = cache_groups(resized, model, other_datasets, "test")
    assert group["folder"].rsplit("/", 1)[1] != folder
    with pytest.raises(
        FeatureCacheError,
        match=rf"stale: .*{folder} \(differs in processor\); run: python -m lavis.tools.cache_features",  # noqa: E501
    ):
        attach_cached_features(resized, model, other_datasets)
    assert "stale" in caplog.text

    # other encoder weights: another folder
    with torch.no_grad():
        model.Qformer.parameters().__next__().add_(1e-3)
    with pytest.raises(FeatureCacheError, match=r"differs in encoder\)"):
        attach_cached_features(cfg, model, datasets)

    # an edited image file: same folder, but its entry is missing
    _, datasets, model = build(cfg)
    attach_cached_features(cfg, model, datasets)  # the cache fits
    image = shapes / "image" / datasets["shapes_instruction"]["train"].image_paths()[0]
    Image.open(image).rotate(90).save(image)
    _, datasets, model = build(cfg)
    with pytest.raises(
        FeatureCacheError,
        match=r"is stale: 1 of 52 image\(s\) or video\(s\) are new or changed .*; run: python -m lavis.tools.cache_features",  # noqa: E501
    ):
        attach_cached_features(cfg, model, datasets)
    assert run_command(cfg_path) == 0  # recomputes it
    attach_cached_features(cfg, model, datasets)
    assert cache_dirs(shapes) == [folder]


def test_missing_cache_says_to_run_the_command(shapes, tmp_path, capsys):
    cfg_path = write_cfg(shapes, tmp_path)
    cfg = load_cfg(cfg_path, *FROZEN, "run.use_cached_features=True")
    _, datasets, model = build(cfg)
    with pytest.raises(
        FeatureCacheError,
        match=r"no feature cache for shapes_instruction/train, shapes_instruction/val at .*: missing: .*; run: python -m lavis.tools.cache_features",  # noqa: E501
    ):
        attach_cached_features(cfg, model, datasets)


def test_refuses_an_image_side_that_trains(shapes, tmp_path, capsys):
    cfg_path = write_cfg(shapes, tmp_path)
    assert cache_features.main(["--cfg-path", cfg_path, "--options", "model.freeze_vit=True"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "needs a frozen image side, but model.freeze_qformer=False, model.freeze_queries=False" in err
    cfg = load_cfg(cfg_path, "run.use_cached_features=True")  # the tiny default: everything trains
    _, datasets, model = build(cfg)
    with pytest.raises(
        FeatureCacheError, match=r"run.use_cached_features: True needs a frozen image side, but model.freeze_vit=False"
    ):
        attach_cached_features(cfg, model, datasets)


def test_refuses_a_random_train_processor(shapes, tmp_path, capsys):
    cfg_path = write_cfg(shapes, tmp_path)
    augment = [
        "datasets.shapes_instruction.vis_processor.train.name=blip2_image_train",
        "datasets.shapes_instruction.vis_processor.train.min_scale=0.5",
    ]
    assert run_command(cfg_path, *augment) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (
        "datasets.shapes_instruction.vis_processor.train (blip2_image_train) applies random augmentation "
        "(RandomResizedCrop, RandomHorizontalFlip) and cached features would freeze one draw of it"
    ) in err
    cfg = load_cfg(cfg_path, *FROZEN, *augment, "run.use_cached_features=True")
    _, datasets, model = build(cfg)
    with pytest.raises(
        FeatureCacheError,
        match=r"run.use_cached_features: True refused: datasets.shapes_instruction.vis_processor.train",
    ):
        attach_cached_features(cfg, model, datasets)


def test_video_frames_are_cached_and_served_as_the_live_frames(moving_root, tmp_path, capsys):
    """A video's sampled frames are cached one row each, in order, keyed by its bytes and max_frames."""
    root = shutil.copytree(moving_root, tmp_path / "moving")
    cfg = {
        "model": {"arch": "minigpt4qwen", "model_type": "tiny"},
        "datasets": {
            "moving_shapes": {
                "generator": {"num_train": 12, "num_val": 4, "num_frames": 8, "image_size": 64, "seed": 0},
                "max_frames": 3,
                "build_info": {
                    "annotations": {
                        "train": {"storage": str(root / "train.json")},
                        "val": {"storage": str(root / "val.json")},
                    },
                    "images": {"storage": str(root / "video")},
                },
            }
        },
        "run": {"batch_size_eval": 4, "device": "cpu", "threads": 1, "output_dir": str(tmp_path / "out")},
    }
    cfg_path = tmp_path / "video.yaml"
    cfg_path.write_text(json.dumps(cfg))
    assert run_command(str(cfg_path)) == 0
    assert "wrote: " in capsys.readouterr().out
    cfg = load_cfg(str(cfg_path), *FROZEN, "run.use_cached_features=True")
    _, datasets, model = build(cfg)
    train = datasets["moving_shapes"]["train"]
    live_sample = train[4]  # a clip (the rows alternate clips and single frames)
    attach_cached_features(cfg, model, datasets)
    cached_sample = train[4]
    assert len(cached_sample["image_features"]) == 3 and "image" not in cached_sample
    with torch.no_grad():
        live = model.eval().encode_queries(torch.stack(live_sample["image"]))
    torch.testing.assert_close(torch.stack(cached_sample["image_features"]), live, rtol=0, atol=1e-6)
    assert cached_sample["conversations"] == live_sample["conversations"]
    # other max_frames: no clip's entry fits (12 train + 4 val clips; the 12 single frames still do)
    other = load_cfg(str(cfg_path), *FROZEN, "run.use_cached_features=True", "datasets.moving_shapes.max_frames=2")
    _, other_datasets, _ = build(other)
    with pytest.raises(FeatureCacheError, match=r"is stale: 16 of 28 image\(s\) or video\(s\) are new or changed"):
        attach_cached_features(other, model, other_datasets)
