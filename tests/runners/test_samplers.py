"""The training sampler: torch's DistributedSampler order, mid-epoch skipping, length grouping."""

import random

import pytest
import torch
from torch.utils.data import DistributedSampler

from lavis.runners.samplers import MEGABATCH_FACTOR, ResumableSampler


def indices(sampler, epoch=0, start_batch=0):
    sampler.set_epoch(epoch)
    sampler.set_start_batch(start_batch)
    return list(sampler)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_order_is_distributed_samplers_and_one_process_is_a_seeded_shuffle(world):
    data = list(range(23))
    for rank in range(world):
        ours = ResumableSampler(data, batch_size=4, num_replicas=world, rank=rank, seed=7)
        torchs = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=7)
        torchs.set_epoch(3)
        assert indices(ours, epoch=3) == list(torchs)
    if world == 1:
        assert (
            indices(ResumableSampler(data, 4, seed=7), epoch=3)
            == torch.randperm(23, generator=torch.Generator().manual_seed(10)).tolist()
        )


def test_start_batch_skips_exactly_the_batches_done():
    sampler = ResumableSampler(list(range(50)), batch_size=8, num_replicas=2, rank=1, seed=0)
    full = indices(sampler, epoch=1)
    assert indices(sampler, epoch=1, start_batch=2) == full[16:]
    assert len(sampler) == len(full) - 16
    assert indices(sampler, epoch=1, start_batch=9) == [] and len(sampler) == 0


def test_length_grouping_keeps_the_samples_and_cuts_padding():
    rng = random.Random(0)
    lengths = [rng.randint(10, 500) for _ in range(1000)]
    batch, world = 8, 2
    per_rank = [
        indices(ResumableSampler(lengths, batch, world, rank, seed=3, lengths=lengths), epoch=1)
        for rank in range(world)
    ]
    plain = [indices(ResumableSampler(lengths, batch, world, rank, seed=3), epoch=1) for rank in range(world)]
    assert sorted(per_rank[0] + per_rank[1]) == sorted(plain[0] + plain[1])  # the same samples, once each

    def padded(rank_indices):
        batches = [rank_indices[i : i + batch] for i in range(0, len(rank_indices), batch)]
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    real = sum(lengths)
    grouped_waste = sum(padded(r) for r in per_rank) / real - 1
    plain_waste = sum(padded(r) for r in plain) / real - 1
    assert grouped_waste < 0.1 < plain_waste  # random batches waste well over half here
    first = per_rank[0][:batch]  # the longest batch of the first mega-batch comes first
    mega = sorted(per_rank[0][: batch * MEGABATCH_FACTOR], key=lambda i: -lengths[i])
    assert max(lengths[i] for i in first) == lengths[mega[0]]


def test_length_grouping_is_per_epoch_deterministic_and_resumable():
    lengths = list(range(300))
    sampler = ResumableSampler(lengths, 4, 1, 0, seed=5, lengths=lengths)
    epoch2 = indices(sampler, epoch=2)
    assert indices(sampler, epoch=2) == epoch2 != indices(sampler, epoch=3)
    assert indices(sampler, epoch=2, start_batch=5) == epoch2[20:]


def test_lengths_must_match_the_dataset():
    with pytest.raises(ValueError, match="3 lengths for a dataset of 4 samples"):
        ResumableSampler([0, 1, 2, 3], 2, lengths=[1, 2, 3])
