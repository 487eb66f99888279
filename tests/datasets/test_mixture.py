"""Datasets mixed by sample_ratio: shares, a (seed, epoch) draw, upsampling, a run that trains on
one, and its exact resume from a mid-epoch checkpoint."""

import pytest
import torch
from omegaconf import OmegaConf

from lavis.common.config import build_dataset_config
from lavis.datasets.mixture import MixtureDataset, shares
from tests.helpers.runs import make_runner, run_config


class Rows:
    def __init__(self, name, n):
        self.rows = [f"{name}{i}" for i in range(n)]
        self.epochs = []

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        return self.rows[index]

    def set_epoch(self, seed, epoch):
        self.epochs.append((seed, epoch))

    @staticmethod
    def collater(samples):
        return samples

    def lengths(self, image_tokens):
        return [len(r) + image_tokens for r in self.rows]


def test_shares_add_up_by_largest_remainder():
    assert shares(10, [1, 1, 1]) == [4, 3, 3]
    assert shares(100, [3, 1]) == [75, 25] and sum(shares(7, [0.2, 0.5, 0.3])) == 7


def test_each_dataset_fills_its_share_drawn_from_seed_and_epoch():
    big, small = Rows("b", 30), Rows("s", 6)
    mix = MixtureDataset([big, small], [1.0, 1.0], ["big", "small"])
    assert len(mix) == 36 and mix.counts == [18, 18]
    mix.set_epoch(42, 0)
    epoch0 = [mix[i] for i in range(len(mix))]
    assert sum(r.startswith("s") for r in epoch0) == 18  # the small set upsampled to its share...
    assert {r for r in epoch0 if r.startswith("s")} == set(small.rows)  # ...each row 3 times
    assert len({r for r in epoch0 if r.startswith("b")}) == 18  # the big one subsampled, no repeats
    again = MixtureDataset([Rows("b", 30), Rows("s", 6)], [1.0, 1.0], ["big", "small"])
    again.set_epoch(42, 0)
    assert [again[i] for i in range(len(again))] == epoch0  # a resumed run, another rank: the same map
    mix.set_epoch(42, 1)
    assert [mix[i] for i in range(len(mix))] != epoch0 and big.epochs[-1] == (42, 1)
    assert mix.lengths(2) == [len(mix[i]) + 2 for i in range(len(mix))]
    with pytest.raises(ValueError, match="sample_ratio must be > 0"):
        MixtureDataset([big], [0.0], ["big"])


def test_a_run_trains_on_a_mixture_and_logs_its_counts(shapes_root, tmp_path, caplog):
    cfg = run_config(shapes_root, tmp_path, max_epoch=1, valid_splits=[], group_by_length=True)
    cfg.config.datasets.shapes_instruction.sample_ratio = 1.0
    caption = caption_dataset_cfg(shapes_root)
    cfg.config.datasets["shapes_caption"] = caption
    with caplog.at_level("INFO"):
        runner = make_runner(cfg)
        runner.train()
    assert (
        "mixture of 80 samples per epoch: shapes_instruction 60 of 40 rows (ratio 1), shapes_caption 20" in caplog.text
    )
    cfg.config.datasets.shapes_caption.sample_ratio = None
    with pytest.raises(ValueError, match=r"datasets \['shapes_caption'\] have no sample_ratio"):
        make_runner(cfg, job="other").train()


def mixture_config(shapes_root, output_dir, **run):
    cfg = run_config(shapes_root, output_dir, max_epoch=1, valid_splits=[], save_freq_iters=2, **run)
    cfg.config.datasets.shapes_instruction.sample_ratio = 1.0
    cfg.config.datasets["shapes_caption"] = caption_dataset_cfg(shapes_root)
    return cfg


def test_a_mixture_run_resumed_mid_epoch_ends_with_the_uninterrupted_weights(shapes_root, tmp_path):
    """The mixture's draw depends on (seed, epoch) only, so a resumed run sees the same samples."""
    make_runner(mixture_config(shapes_root, tmp_path / "full"), job="job").train()
    full = tmp_path / "full" / "job"
    cfg = mixture_config(shapes_root, tmp_path / "resumed", resume_ckpt_path=str(full / "checkpoint_0_iter4.pth"))
    torch.manual_seed(1234)  # whatever the RNG holds before, the checkpoint's states take over
    make_runner(cfg, job="job").train()
    a, b = (
        torch.load(d / "job" / "checkpoint_0.pth", weights_only=True)["model"]
        for d in (tmp_path / "full", tmp_path / "resumed")
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # and a different seed draws another mixture, so the equality above is not trivial
    make_runner(mixture_config(shapes_root, tmp_path / "other", seed=7), job="job").train()
    c = torch.load(tmp_path / "other" / "job" / "checkpoint_0.pth", weights_only=True)["model"]
    assert not all(torch.equal(a[k], c[k]) for k in a)


def caption_dataset_cfg(shapes_root):
    """The shapes fixture's images as caption rows, a third of the instruction set's share."""
    user = {
        "generator": {"num_train": 40, "num_val": 12},
        "sample_ratio": 1.0 / 3,
        "build_info": {
            "annotations": {"train": {"storage": str(shapes_root / "train_captions.json")}},
            "images": {"storage": str(shapes_root / "image")},
        },
    }
    return build_dataset_config("shapes_caption", OmegaConf.create(user))
