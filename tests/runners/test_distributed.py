"""DDP through torchrun on CPU (2 gloo processes): equivalence with one process, rank-0 files, failures.

Both runs go through `train.py` in subprocesses.  The equivalence: with world_size 2 and
`batch_size_train` B, DistributedSampler gives rank r the indices perm[r::2] (perm: the same
permutation the single-process loader draws from `run.seed + epoch`), so step s of the DDP run
averages the gradients of rank 0's and rank 1's batch s.  The single process runs with
`accum_grad_iters: 2` on a loader whose micro-batch 2s+k is rank k's batch s (built here, in the
test, by replacing `RunnerBase._train_loader`), and averages the same two micro-batch gradients.
The lr schedule counts global micro-batches, so both runs warm up and decay alike.
"""

import json
import textwrap
import time

import pytest
import torch

from tests.helpers import REPO
from tests.helpers.distributed import EPOCHS, job_dir, single, steps, torchrun, write_config

# One process, accumulating 2 micro-batches in the DDP ranks' order (see the module docstring).
INTERLEAVED_TRAIN = textwrap.dedent(
    """
    import sys
    import torch
    from torch.utils.data import DataLoader
    sys.path.insert(0, {repo!r})
    import train
    from lavis.datasets.datasets.instruction_dataset import InstructionDataset
    from lavis.runners.runner_base import RunnerBase

    def interleaved_loader(self, dataset, epoch, start_batch=0, world=2):
        perm = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.run_cfg.seed + epoch)).tolist()
        shards, size = [perm[r::world] for r in range(world)], self.run_cfg.batch_size_train
        order = [i for s in range(0, len(shards[0]), size) for shard in shards for i in shard[s : s + size]]
        return DataLoader(dataset, batch_size=size, sampler=order, collate_fn=InstructionDataset.collater)

    RunnerBase._train_loader = interleaved_loader
    sys.exit(train.main(sys.argv[1:]))
    """
)


@pytest.fixture(scope="module")
def ddp_and_single(shapes_root, tmp_path_factory):
    """One 2-rank DDP run (with evaluation) and its single-process equivalent, run once for the module."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    cfg_path = write_config(shapes_root, tmp_path)
    started = time.time()
    ddp = torchrun(cfg_path, f"run.output_dir={tmp_path / 'ddp'}", "run.valid_splits=[val]", "run.save_freq_iters=2")
    assert ddp.returncode == 0, ddp.stderr[-4000:]
    one = single(
        INTERLEAVED_TRAIN.format(repo=REPO), cfg_path, f"run.output_dir={tmp_path / 'single'}", "run.accum_grad_iters=2"
    )
    assert one.returncode == 0, one.stderr[-4000:]
    print(f"DDP + single runs: {time.time() - started:.0f}s")
    return ddp, job_dir(tmp_path / "ddp"), one, job_dir(tmp_path / "single")


@pytest.mark.slow
def test_ddp_step_equals_single_process_accumulation(ddp_and_single):
    _, ddp_job, _, single_job = ddp_and_single
    ddp_steps, single_steps = steps(ddp_job), steps(single_job)
    assert len(ddp_steps) == EPOCHS * 5 and len(single_steps) == EPOCHS * 10
    for s, record in enumerate(ddp_steps):  # DDP logs the mean over ranks of the two micro-batch losses
        pair = single_steps[2 * s : 2 * s + 2]
        assert (record["epoch"], record["iter"]) == (pair[0]["epoch"], s % 5)
        assert abs(record["loss"] - (pair[0]["loss"] + pair[1]["loss"]) / 2) < 1e-5, (s, record, pair)
        assert record["lr"] == pair[0]["lr"] == pair[1]["lr"]  # warmup and cosine counted alike
    assert ddp_steps[-1]["loss"] < ddp_steps[0]["loss"]  # and it learns
    ddp_weights = torch.load(ddp_job / f"checkpoint_{EPOCHS - 1}.pth", weights_only=True)["model"]
    single_weights = torch.load(single_job / f"checkpoint_{EPOCHS - 1}.pth", weights_only=True)["model"]
    assert ddp_weights.keys() == single_weights.keys()
    for name, value in ddp_weights.items():
        torch.testing.assert_close(value, single_weights[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.slow
def test_only_rank_0_writes_and_prints_and_its_checkpoint_loads_in_one_process(ddp_and_single, tmp_path):
    ddp, ddp_job, _, _ = ddp_and_single
    assert sorted(p.name for p in ddp_job.parent.iterdir()) == [ddp_job.name]  # one job folder
    assert sorted(p.name for p in ddp_job.iterdir()) == [
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
    log = [json.loads(line) for line in open(ddp_job / "log.jsonl", encoding="utf-8")]
    assert (
        len(log) == EPOCHS * 5 + 1 and log[-1]["eval_split"] == "val" and log[-1]["total"] == 12
    )  # no duplicated lines
    assert ddp.stdout.count("held-out exact-match accuracy") == 1
    assert ddp.stdout.count("epoch 1: mean loss") == 1

    from lavis.models import load_model

    model = load_model("minigpt4qwen", "tiny", checkpoint=str(ddp_job / "checkpoint_1.pth"))
    saved = torch.load(ddp_job / "checkpoint_1.pth", weights_only=True)["model"]
    state = model.state_dict()
    assert all(torch.equal(state[name], value) for name, value in saved.items())


@pytest.mark.slow
def test_ddp_resumed_mid_epoch_ends_with_the_same_weights(ddp_and_single, shapes_root, tmp_path):
    _, ddp_job, _, _ = ddp_and_single
    checkpoint = torch.load(ddp_job / "checkpoint_0_iter4.pth", weights_only=True)
    assert checkpoint["iters"] == 4 and len(checkpoint["rng"]) == 2  # both ranks' RNG states
    resumed = torchrun(
        write_config(shapes_root, tmp_path),
        f"run.output_dir={tmp_path / 'resumed'}",
        f"run.resume_ckpt_path={ddp_job / 'checkpoint_0_iter4.pth'}",
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    final, reference = (
        torch.load(job / "checkpoint_1.pth", weights_only=True)["model"]
        for job in (job_dir(tmp_path / "resumed"), ddp_job)
    )
    assert final.keys() == reference.keys() and all(torch.equal(final[n], reference[n]) for n in final)
    resumed_losses = [r["loss"] for r in steps(job_dir(tmp_path / "resumed"))]
    assert resumed_losses == [r["loss"] for r in steps(ddp_job)][4:]  # from epoch 0, iteration 4 on


@pytest.mark.slow
def test_ddp_tensorboard_counts_every_ranks_tokens(ddp_and_single):
    """DDP step s holds rank 0's and rank 1's batch s: the single run's micro-batches 2s and 2s+1."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, ddp_job, _, single_job = ddp_and_single
    events = EventAccumulator(str(ddp_job / "tensorboard"))
    events.Reload()
    labelled, padded = events.Scalars("train/tokens_per_s"), events.Scalars("train/padded_tokens_per_s")
    assert [e.step for e in labelled] == [e.step for e in padded] == list(range(1, EPOCHS * 5 + 1))
    single_steps = steps(single_job)
    for s, (tokens, pads) in enumerate(zip(labelled, padded)):
        pair = single_steps[2 * s : 2 * s + 2]
        expected = sum(r["num_tokens"] for r in pair) / sum(r["num_padded_tokens"] for r in pair)
        assert tokens.value / pads.value == pytest.approx(expected, rel=1e-4), s


def test_one_rank_failing_stops_every_rank_with_one_message(shapes_root, tmp_path):
    """Rank 0 cannot create its job folder (a file is in the way; only rank 0 creates it), so it
    fails while rank 1 goes on into DDP's first collective; both must end, promptly, non-zero."""
    cfg_path = write_config(shapes_root, tmp_path)
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    started = time.time()
    proc = torchrun(cfg_path, f"run.output_dir={blocker}", "run.max_epoch=1", timeout=120)
    elapsed = time.time() - started
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: rank")]
    assert errors and errors[0].startswith("error: rank 0: run.output_dir: cannot make the folder"), proc.stderr[-4000:]
    assert str(blocker) in errors[0]
    assert elapsed < 60, elapsed
    assert blocker.read_text() == "not a folder"


def test_plain_python_is_single_process(monkeypatch):
    """No torchrun variables: nothing is initialised, every helper answers as for one process."""
    from lavis.common import dist_utils

    for name in dist_utils.TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    assert dist_utils.init_distributed_mode({"distributed": True, "device": "cpu"}) is False
    assert (dist_utils.get_rank(), dist_utils.get_world_size(), dist_utils.is_main_process()) == (0, 1, True)
    assert dist_utils.main_process(lambda: "ran")() == "ran"
    dist_utils.barrier()
    dist_utils.destroy_process_group()
    assert dist_utils.all_reduce_mean([1.5]) == [1.5]


@pytest.mark.slow
def test_a_rank_whose_batch_has_no_image_neither_hangs_nor_fails(shapes_root, tmp_path):
    """Two rows, one with an image and one text-only (LLaVA's mixture has both), one row per rank
    per step: at every step one rank's batch has no image, and DDP still reduces every gradient."""
    image_row = json.loads((shapes_root / "train.json").read_text(encoding="utf-8"))[0]
    rows = [
        {"id": "img", "image": image_row["image"], "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the shape?"}, {"from": "gpt", "value": "red"}]},
        {"id": "text", "conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "hi"}]},
    ]  # fmt: skip
    (tmp_path / "mix.json").write_text(json.dumps(rows), encoding="utf-8")
    cfg = tmp_path / "mix.yaml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            model: {{arch: minigpt4qwen, model_type: tiny}}
            datasets:
              llava_mix665k:
                build_info:
                  annotations: {{train: {{storage: {tmp_path / "mix.json"}}}}}
                  images: {{storage: {shapes_root / "image"}}}
                vis_processor: {{train: {{name: blip_image_eval, image_size: 64}}}}
            run: {{max_epoch: 3, batch_size_train: 1, device: cpu, threads: 1, dist_timeout_s: 60,
                   output_dir: {tmp_path / "out"}, tensorboard: False}}
            """
        )
    )
    result = torchrun(cfg, "run.seed=1", timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(steps(job_dir(tmp_path / "out"))) == 3  # one step per epoch, each with one text-only rank
