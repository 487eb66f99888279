"""Each class of user error through the real entry points: exit status 2, one `error: ...` line
on stderr naming the thing, and no traceback (issue #13's classes: config values out of range,
an output folder that cannot take a checkpoint, a full disk, unreadable annotations, no readable
image, checkpoints of the right container but the wrong content, chat settings out of range).
The runs that stop before training run in this process (`tests/helpers/entry.py`); the full-disk
one trains and keeps a process of its own."""

import json
import os

import pytest
import torch

from lavis.common.checkpoint import save_file
from tests.helpers.chat import run_script
from tests.helpers.entry import run_in_process

TINY_MODEL = {"arch": "minigpt4qwen", "model_type": "tiny"}
SMALL_SHAPES = [
    "datasets.shapes_instruction.generator.num_train=40",
    "datasets.shapes_instruction.generator.num_val=12",
    "run.valid_splits=[]",
    "run.tensorboard=False",
    "run.max_epoch=1",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private cache root (the small shapes set is generated there once) and one thread."""
    return {"LAVIS_CACHE_ROOT": str(tmp_path_factory.mktemp("cache")), "OMP_NUM_THREADS": "1"}


def one_error(result, expected):
    """`result` ended with exit status 2 and exactly one `error:` line, which starts with `expected`."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(errors) == 1 and errors[0].startswith(f"error: {expected}"), result.stderr[-3000:]
    return errors[0]


def train(env, tmp_path, *options, cfg=None):
    args = ["train.py", *(["--cfg-path", str(cfg)] if cfg else []), "--options", f"run.output_dir={tmp_path / 'out'}"]
    return run_in_process(*args, *(SMALL_SHAPES if cfg is None else []), *options, env=env)


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("run.batch_size_train=0", "config: run.batch_size_train = 0: must be an integer >= 1"),
        ("run.device=gpu", "config: run.device = 'gpu': must be cpu, cuda, cuda:N (a GPU's index) or mps"),
        ("model.max_txt_len=-1", "config: model.max_txt_len = -1: must be an integer >= 1"),
    ],
)
def test_a_config_value_out_of_range(env, tmp_path, option, expected):
    assert one_error(train(env, tmp_path, option), expected) == f"error: {expected}"


def test_a_run_in_this_process_reports_what_the_script_reports_in_its_own(env, tmp_path):
    # the in-process runner of these tests against a real `python train.py`, on one error
    options = ("--options", f"run.output_dir={tmp_path / 'out'}", *SMALL_SHAPES, "run.batch_size_train=0")
    alone, here = run_script("train.py", *options, env=env), run_in_process("train.py", *options, env=env)
    assert (here.returncode, here.stdout) == (alone.returncode, alone.stdout) == (2, "")
    errors = [[line for line in r.stderr.splitlines() if line.startswith("error:")] for r in (alone, here)]
    assert errors[0] == errors[1] == ["error: config: run.batch_size_train = 0: must be an integer >= 1"]


def test_a_max_txt_len_that_cuts_off_every_answer(env, tmp_path):
    # 8 tokens hold the system prompt's start only: no sample keeps a label, nothing would train
    result = train(env, tmp_path, "model.max_txt_len=8", "run.batch_size_train=2")
    one_error(
        result, "no supervised token in the first 20 micro-batches: every answer was cut off by model.max_txt_len = 8"
    )


def test_an_output_folder_under_a_file(env, tmp_path):
    (tmp_path / "file").write_text("x")
    result = train(env, tmp_path / "file")
    one_error(result, f"run.output_dir: cannot make the folder {tmp_path / 'file' / 'out'}/")
    assert result.stderr.rstrip().endswith(f": {tmp_path / 'file'} is a file")
    cfg, output = "lavis/projects/eval/shapes_pope.yaml", f"run.output_dir={tmp_path / 'file' / 'x'}"
    result = run_in_process("evaluate.py", "--cfg-path", cfg, "--options", output, env=env)
    expected = f"run.output_dir: cannot make the folder {tmp_path / 'file' / 'x'}: {tmp_path / 'file'} is a file"
    assert one_error(result, expected) == f"error: {expected}"


@pytest.mark.slow
def test_a_disk_that_fills_up_while_a_checkpoint_is_written(env, tmp_path, small_tmpfs):
    folder = small_tmpfs("20m")  # one checkpoint of the tiny model (about 12 MB) fits, two do not
    result = run_script(
        "train.py", "--options", f"run.output_dir={folder}", *SMALL_SHAPES[:-1], "run.max_epoch=2", env=env
    )
    line = one_error(result, f"no space left to write {folder}/")
    assert "checkpoint_1.pth: it needs about " in line and " are free there " in line
    (job,) = os.listdir(folder)
    assert sorted(os.listdir(folder / job)) == ["checkpoint_0.pth", "config.json", "curves.png", "log.jsonl"]
    too_small = small_tmpfs("4m")
    result = run_in_process("train.py", "--options", f"run.output_dir={too_small}", *SMALL_SHAPES, env=env)
    one_error(result, f"run.output_dir: not enough space in {too_small}/")


def annotation_config(tmp_path, annotations, images):
    cfg = {
        "model": TINY_MODEL,
        "datasets": {
            "minigpt4_instruction": {
                "build_info": {
                    "annotations": {"train": {"storage": str(annotations)}},
                    "images": {"storage": str(images)},
                },
                "vis_processor": {"train": {"name": "blip_image_eval", "image_size": 64}},
                "text_processor": {"train": {"name": "base_instruction"}},
            }
        },
        "run": {"device": "cpu", "valid_splits": [], "tensorboard": False},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def test_unreadable_annotations_and_no_readable_image(env, tmp_path):
    images = tmp_path / "image"
    images.mkdir()
    annotations = tmp_path / "ann.json"
    annotations.write_bytes(b'[{"image": "0.png", "instruction": "<ImageHere> caf\xe9", "output": "x"}]')
    result = train(env, tmp_path, cfg=annotation_config(tmp_path, annotations, images))
    assert one_error(result, "") == f"error: {annotations} line 1: not valid UTF-8 (byte 0xe9)"
    annotations.write_text(json.dumps([{"image": "0.png", "instruction": "<ImageHere> What?", "output": "red"}] * 3))
    (images / "0.png").write_bytes(b"not a png")
    result = train(env, tmp_path, cfg=annotation_config(tmp_path, annotations, images))
    line = one_error(result, f"no readable image or video in the whole dataset (3 samples): {annotations} row 0: ")
    assert "cannot identify image file" in line


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory):
    """Checkpoints of the right container (a runner checkpoint's dict, the tiny model's config)
    but the wrong content: a `model` entry that is a list, and trainable-state values that are not
    tensors."""
    folder = tmp_path_factory.mktemp("bad_checkpoints")
    config = {"model": TINY_MODEL}
    resume = {"optimizer": {"state": {}, "param_groups": []}, "epoch": 0, "config": config}
    return {
        "list": save_file({"model": [1, 2], **resume}, folder / "list.pth"),
        "strings": save_file({"model": {"llm_proj.weight": "w", "llm_proj.bias": 0}, **resume}, folder / "strings.pth"),
        "int64": save_file(
            {"model": {"llm_proj.bias": torch.zeros(128, dtype=torch.long)}, **resume}, folder / "int.pth"
        ),
    }


@pytest.mark.parametrize(
    ("script", "flag", "kind", "expected"),
    [
        ("test_model_chat.py", "--ckpt-path", "list", "{path}: its 'model' entry is a list, not a mapping"),
        ("cli_demo.py", "-c", "strings", "{path}: model state values that are not tensors: llm_proj.weight (str)"),
        ("webui_demo.py", "-c", "int64", "checkpoint {path} does not fit this model: dtype mismatches llm_proj.bias"),
    ],
)
def test_chat_scripts_refuse_a_checkpoint_of_the_wrong_content(env, bad_checkpoints, script, flag, kind, expected):
    path = bad_checkpoints[kind]
    one_error(run_in_process(script, flag, path, "--cpu-only", env=env), expected.format(path=path))


def test_train_resume_refuses_a_checkpoint_of_the_wrong_content(env, tmp_path, bad_checkpoints):
    path = bad_checkpoints["strings"]
    result = train(env, tmp_path, "--resume", path)
    one_error(result, f"{path}: model state values that are not tensors: llm_proj.weight (str), llm_proj.bias (int)")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["cli_demo.py", "-s", "4294967296"], "seed must be an integer in 0..4294967295, got 4294967296"),
        (["webui_demo.py", "-s", "-1"], "seed must be an integer in 0..4294967295, got -1"),
        (["test_model_chat.py", "--max-new-tokens", "0"], "max_new_tokens must be an integer in 1..16384, got 0"),
        (["webui_demo.py", "--port", "70000"], "--port 70000: must be an integer in 1..65535"),
    ],
)
def test_chat_settings_out_of_range(env, args, expected):
    assert one_error(run_in_process(*args, env=env), expected) == f"error: {expected}"
