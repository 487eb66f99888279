"""`evaluate.py` end to end on tiny benchmark files in the released formats, with a tiny model:
outputs, 1 rank against 2, resume, and the one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import REPO
from tests.helpers import benchmark_files as files
from tests.helpers.chat import run_script
from tests.helpers.distributed import free_port
from tests.helpers.entry import run_in_process


def write_eval_config(tmp_path, output_dir, task="mme", names=("mme", "mmbench", "pope", "seed_bench")):
    data = tmp_path / "data"
    data.mkdir()
    mme, tsv, (pope_root, coco) = files.mme_root(data), files.mmbench_tsv(data), files.pope_files(data)
    seed, seed_images = files.seed_files(data)
    eval_64 = {"eval": {"name": "blip_image_eval", "image_size": 64}}
    cfg = {
        "model": {"arch": "minigpt4qwen", "model_type": "tiny"},
        "datasets": {
            "mme": {"build_info": {"annotations": {"test": {"storage": str(mme)}}}, "vis_processor": eval_64},
            "mmbench": {"build_info": {"annotations": {"test": {"storage": str(tsv)}}}, "vis_processor": eval_64},
            "pope": {
                "build_info": {"annotations": {"test": {"storage": str(pope_root)}}, "images": {"storage": str(coco)}},
                "vis_processor": eval_64,
            },
            "seed_bench": {
                "build_info": {
                    "annotations": {"test": {"storage": str(seed)}},
                    "images": {"storage": str(seed_images)},
                },
                "vis_processor": eval_64,
            },
        },
        "run": {
            "task": task,
            "device": "cpu",
            "batch_size_eval": 2,
            "max_new_tokens": 4,
            "output_dir": str(output_dir),
            "threads": 1,
        },
    }
    cfg["datasets"] = {name: cfg["datasets"][name] for name in names}
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def predictions(folder):
    with open(folder / "predictions.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_one_rank_and_two_ranks_write_the_same_predictions_and_scores(tmp_path):
    cfg = write_eval_config(tmp_path, tmp_path / "one")
    one = run_script("evaluate.py", "--cfg-path", str(cfg), timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    assert all(title in one.stdout for title in ("MME", "MMBench", "POPE", "SEED-Bench"))
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={free_port()}",
            "evaluate.py",
            "--cfg-path",
            str(cfg),
            "--options",
            f"run.output_dir={tmp_path / 'two'}",
        ],
        cwd=REPO,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    for name, count in (("mme", 6), ("mmbench", 3 + 4), ("pope", 9), ("seed_bench", 2)):
        ones, twos = predictions(tmp_path / "one" / name), predictions(tmp_path / "two" / name)
        assert len(ones) == count, (name, len(ones))
        assert ones == twos, name
        record = ones[0]
        fields = {"question_id", "prompt", "prediction", "parsed", "correct", "answers", "meta"}
        # SEED-Bench's answer ranking also writes the loss of each option's reply
        assert set(record) == fields | ({"option_losses"} if name == "seed_bench" else set())
        results = [json.loads((tmp_path / run / name / "results.json").read_text()) for run in ("one", "two")]
        assert results[0] == results[1] and results[0]["questions"] == count
        assert not [p for p in os.listdir(tmp_path / "two" / name) if p.startswith("predictions.rank")]
    mmbench = predictions(tmp_path / "one" / "mmbench")
    assert {r["meta"]["rotation"] for r in mmbench} == {0, 1, 2, 3}
    assert "Answer with the option's letter from the given choices directly." in mmbench[0]["prompt"]


def test_resume_answers_only_what_is_missing(tmp_path):
    out = tmp_path / "out"
    cfg = write_eval_config(tmp_path, out, names=("pope",))
    first = run_in_process("evaluate.py", "--cfg-path", str(cfg))
    assert first.returncode == 0, first.stderr[-3000:]
    full = predictions(out / "pope")
    # an interrupted run: rank 0 had written 4 records and half of a fifth
    (out / "pope" / "predictions.jsonl").unlink()
    (out / "pope" / "results.json").unlink()
    lines = [json.dumps(r, ensure_ascii=False) for r in full[:4]]
    (out / "pope" / "predictions.rank0.jsonl").write_text("\n".join(lines) + "\n" + lines[0][:20], encoding="utf-8")
    again = run_in_process("evaluate.py", "--cfg-path", str(cfg), "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resume: 4 of 9 questions already answered" in again.stderr
    assert predictions(out / "pope") == full


def test_resume_after_other_settings_asks_again_what_was_asked_otherwise(tmp_path):
    """SEED-Bench by generated letters, then --resume by answer ranking: every question is asked
    in the new mode (its prompt without the options), none of the letters' answers is kept."""
    out = tmp_path / "out"
    cfg = write_eval_config(tmp_path, out, task="seed_bench", names=("seed_bench",))
    first = run_in_process("evaluate.py", "--cfg-path", str(cfg), "--options", "run.seed_bench_scoring=generate")
    assert first.returncode == 0, first.stderr[-3000:]
    letters = predictions(out / "seed_bench")
    assert all("Answer with the option's letter" in r["prompt"] and "option_losses" not in r for r in letters)
    again = run_in_process("evaluate.py", "--cfg-path", str(cfg), "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    n = len(letters)
    assert f"resume: {n} earlier answers were to other prompts (other settings): asked again" in again.stderr
    ranked = predictions(out / "seed_bench")
    assert [r["question_id"] for r in ranked] == [r["question_id"] for r in letters]
    assert all("Answer with" not in r["prompt"] and set(r["option_losses"]) == set("ABCD") for r in ranked)


def test_missing_benchmark_files_and_a_training_task_are_one_line_errors(tmp_path):
    cfg = write_eval_config(tmp_path, tmp_path / "out")
    gone = run_in_process(
        "evaluate.py",
        "--cfg-path",
        str(cfg),
        "--options",
        f"datasets.mme.build_info.annotations.test.storage={tmp_path}/nope",
    )
    assert gone.returncode == 2 and "Traceback" not in gone.stderr
    assert "datasets.mme.build_info.annotations.test" in gone.stderr and f"{tmp_path}/nope" in gone.stderr
    wrong = run_in_process("evaluate.py", "--cfg-path", str(cfg), "--options", "run.task=image_text_pretrain")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "run.task 'image_text_pretrain' is not a benchmark" in wrong.stderr and "mmbench" in wrong.stderr


def test_a_benchmark_in_valid_splits_is_scored_at_each_epoch_end(shapes_root, tmp_path):
    from omegaconf import OmegaConf

    from tests.helpers.runs import make_runner, read_log, run_config

    cfg = run_config(shapes_root, tmp_path / "out", max_epoch=2, valid_splits=["val", "mme"], max_new_tokens=4)
    cfg.config.datasets.mme = OmegaConf.merge(
        cfg.config.datasets.shapes_instruction,
        {"build_info": {"annotations": {"test": {"storage": str(files.mme_root(tmp_path))}}}},
    )
    del cfg.config.datasets.mme.build_info.annotations["train"], cfg.config.datasets.mme.build_info.annotations["val"]
    runner = make_runner(cfg)
    results = runner.train()
    records = [r for r in read_log(runner.log_path) if r.get("benchmark") == "mme"]
    assert [r["epoch"] for r in records] == [0, 1]
    assert {"perception total", "artwork acc", "artwork acc+", "count acc"} <= set(records[0])
    assert set(results) == {"mme/epoch_0", "mme/epoch_1", "val"}
    for epoch in (0, 1):
        assert (Path(runner.output_dir) / "benchmarks" / "mme" / f"epoch_{epoch}" / "results.json").is_file()
