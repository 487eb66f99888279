"""End to end on the tiny model: training lowers the loss, logs, checkpoints, resume, evaluation."""

import json

import pytest
import torch

from lavis.runners.runner_base import param_groups
from tests.helpers.runs import make_runner, read_log, run_config


def test_training_lowers_the_loss_and_writes_logs_and_checkpoints(shapes_root, tmp_path, capsys):
    cfg = run_config(shapes_root, tmp_path, max_epoch=3, init_lr=2e-3)
    runner = make_runner(cfg)
    results = runner.train()
    log = read_log(tmp_path / "job" / "log.jsonl")
    steps = [r for r in log if "loss" in r]
    assert len(steps) == 3 * 5 and all({"epoch", "iter", "loss", "lr"} <= set(r) for r in steps)
    first, last = steps[0]["loss"], sum(r["loss"] for r in steps[-5:]) / 5
    assert last < 0.5 * first
    assert steps[0]["lr"] < steps[2]["lr"]  # warmup
    for epoch in range(3):
        assert (tmp_path / "job" / f"checkpoint_{epoch}.pth").exists()
    assert results["val"]["total"] == 12 and 0.0 <= results["val"]["accuracy"] <= 1.0
    assert "held-out exact-match accuracy" in capsys.readouterr().out
    assert json.loads((tmp_path / "job" / "config.json").read_text())["run"]["max_epoch"] == 3


def test_checkpoint_holds_trainable_state_and_resumes(shapes_root, tmp_path):
    cfg = run_config(shapes_root, tmp_path, max_epoch=1, valid_splits=[])
    runner = make_runner(cfg)
    runner.train()
    ckpt = torch.load(tmp_path / "job" / "checkpoint_0.pth", weights_only=True)
    assert set(ckpt) == {"model", "optimizer", "scaler", "config", "epoch", "iters", "rng"} and ckpt["epoch"] == 0
    assert ckpt["iters"] is None and len(ckpt["rng"]) == 1  # an epoch-end checkpoint of one process
    assert set(ckpt["model"]) == {n for n, p in runner.model.named_parameters() if p.requires_grad}
    resumed_cfg = run_config(
        shapes_root, tmp_path, max_epoch=2, valid_splits=[], resume_ckpt_path=str(tmp_path / "job" / "checkpoint_0.pth")
    )
    resumed = make_runner(resumed_cfg, job="job2")
    resumed.resume(resumed_cfg.run_cfg.resume_ckpt_path)
    assert resumed.start_epoch == 1
    for name, value in ckpt["model"].items():
        assert torch.equal(resumed.model.state_dict()[name], value)
    assert resumed.optimizer.state_dict()["state"].keys() == ckpt["optimizer"]["state"].keys()


def test_evaluate_only_scores_a_finetuned_checkpoint_without_training(shapes_root, tmp_path):
    """`run.evaluate=True` with `model.finetuned` (how a trained checkpoint is scored on another
    annotation file through train.py): no step, no checkpoint, the trained run's own scores."""
    trained = make_runner(run_config(shapes_root, tmp_path, max_epoch=1)).train()
    cfg = run_config(shapes_root, tmp_path, max_epoch=1, evaluate=True)
    cfg.config.model.load_finetuned = True
    cfg.config.model.finetuned = str(tmp_path / "job" / "checkpoint_0.pth")
    runner = make_runner(cfg, job="eval")
    saved = torch.load(tmp_path / "job" / "checkpoint_0.pth", weights_only=True)["model"]
    assert all(torch.equal(runner.model.state_dict()[name], value) for name, value in saved.items())
    scored = runner.train()
    assert scored["val"]["accuracy"] == trained["val"]["accuracy"] and scored["val"]["total"] == 12
    assert scored["val"]["by_group"] == trained["val"]["by_group"]
    log = read_log(tmp_path / "eval" / "log.jsonl")
    assert not [r for r in log if "loss" in r] and [r["eval_split"] for r in log if "eval_split" in r] == ["val"]
    assert not list((tmp_path / "eval").glob("checkpoint_*.pth"))


def test_gradient_accumulation_steps_the_optimizer_every_n_iterations(shapes_root, tmp_path, monkeypatch):
    cfg = run_config(shapes_root, tmp_path, max_epoch=1, valid_splits=[], accum_grad_iters=2)
    runner = make_runner(cfg)
    calls = []
    original = runner.optimizer.step
    monkeypatch.setattr(runner.optimizer, "step", lambda *a, **k: (calls.append(1), original(*a, **k)))
    runner.train()
    assert len(calls) == 3  # 5 iterations: after 2, 4 and the last one


def test_no_weight_decay_on_biases_and_norms(tiny_model):
    decay, no_decay = param_groups(tiny_model, 0.05)
    names = {id(p): n for n, p in tiny_model.named_parameters()}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"])
    assert any(names[id(p)].endswith("layer_norm1.weight") for p in no_decay["params"])
    assert any(names[id(p)].endswith("llm_proj.bias") for p in no_decay["params"])


def test_bf16_autocast_trains_on_cpu(shapes_root, tmp_path):
    cfg = run_config(shapes_root, tmp_path, max_epoch=1, valid_splits=[], amp=True, autocast_dtype="bf16")
    runner = make_runner(cfg)
    runner.train()
    steps = [r for r in read_log(tmp_path / "job" / "log.jsonl") if "loss" in r]
    assert len(steps) == 5 and all(r["loss"] == r["loss"] for r in steps)  # finite, not NaN


def test_nan_loss_stops_with_the_sample_ids(shapes_root, tmp_path, monkeypatch):
    cfg = run_config(shapes_root, tmp_path, max_epoch=1, valid_splits=[])
    runner = make_runner(cfg)
    monkeypatch.setattr(
        runner.task, "train_step", lambda model, samples: (torch.tensor(float("nan"), requires_grad=True), {})
    )
    with pytest.raises(FloatingPointError, match=r"loss is nan at epoch 0 iteration 0 \(samples \["):
        runner.train()
    assert not (tmp_path / "job" / "checkpoint_0.pth").exists()


def test_keep_last_n_bounds_the_checkpoints_on_disk(shapes_root, tmp_path):
    cfg = run_config(shapes_root, tmp_path, max_epoch=3, valid_splits=[], keep_last_n=2)
    make_runner(cfg).train()
    assert sorted(p.name for p in (tmp_path / "job").glob("checkpoint_*.pth")) == [
        "checkpoint_1.pth",
        "checkpoint_2.pth",
    ]


def test_group_by_length_batches_similar_lengths_and_still_trains(shapes_root, tmp_path):
    cfg = run_config(shapes_root, tmp_path, max_epoch=1, valid_splits=[], group_by_length=True)
    runner = make_runner(cfg)
    train_set = runner._split("train")
    batches = [batch["index"] for batch in runner._train_loader(train_set, epoch=0)]
    assert sorted(i for b in batches for i in b) == list(range(len(train_set)))  # every sample once
    lengths = train_set.lengths(runner.model.num_query_token)
    longest = [max(lengths[i] for i in b) for b in batches]
    assert longest == sorted(longest, reverse=True)  # one mega-batch here: longest batches first
    runner.train()
    assert (tmp_path / "job" / "checkpoint_0.pth").exists()


def test_packing_trains_with_the_unpacked_runs_losses(shapes_root, tmp_path):
    """run.packing reaches the model, and a packed epoch logs the losses of an unpacked one."""
    losses = {}
    for packing in (False, True):
        cfg = run_config(shapes_root, tmp_path / str(packing), max_epoch=1, valid_splits=[], packing=packing)
        runner = make_runner(cfg)
        assert runner.model.pack_sequences is packing
        runner.train()
        losses[packing] = [r["loss"] for r in read_log(tmp_path / str(packing) / "job" / "log.jsonl") if "loss" in r]
    assert len(losses[True]) == 5
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_loader_takes_the_collater_from_the_dataset(shapes_root, tmp_path):
    """As in LAVIS: the dataset's own `collater` batches it; concatenated parts must share one."""

    class Rows(torch.utils.data.Dataset):
        def __init__(self, rows):
            self.rows = rows

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, index):
            return self.rows[index]

        def collater(self, samples):
            return {"rows": samples, "by": id(self)}

    runner = make_runner(run_config(shapes_root, tmp_path, max_epoch=1, valid_splits=[]))
    first, second = Rows([1, 2, 3]), Rows([4])
    assert list(runner._loader(first, 2)) == [{"rows": [1, 2], "by": id(first)}, {"rows": [3], "by": id(first)}]
    assert len(list(runner._loader(torch.utils.data.ConcatDataset([first, second]), 4))) == 1

    class Other(Rows):
        def collater(self, samples):
            return samples

    with pytest.raises(ValueError, match=r"need one collater; these have 2: \['Other', 'Rows'\]"):
        runner._loader(torch.utils.data.ConcatDataset([first, Other([5])]), 4)
