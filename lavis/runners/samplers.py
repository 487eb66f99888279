"""The training sampler: which samples each rank reads in each epoch, resumable mid-epoch.

Used by `runner_base` for every training epoch, with one process or under DDP.  The order is
torch's `DistributedSampler` order (a `randperm` seeded with `run.seed + epoch`, padded to a
multiple of the world size, rank r taking every world_size-th index from r), which for one
process is also what a seeded shuffling `DataLoader` reads.  On top of it:

* `start_batch`: skip the batches an interrupted run already trained on, without loading
  them, so a resumed epoch reads exactly the rest of the uninterrupted one;
* `lengths` (`run.group_by_length`): batches of similar length, so padding to the longest
  sample of a batch wastes little.  The shuffled indices are cut into mega-batches of
  `MEGABATCH_FACTOR` global batches; each is sorted by length (longest first) and cut into
  global batches of batch_size x world_size, of which rank r takes every world_size-th sample
  (so all ranks get similar lengths, and the longest batch comes first: an out-of-memory
  shows up at once).  This is the scheme of transformers' `LengthGroupedSampler`, made
  deterministic per epoch and resumable.
"""

import torch
from torch.utils.data import DistributedSampler

MEGABATCH_FACTOR = 50


class ResumableSampler(DistributedSampler):
    def __init__(self, dataset, batch_size, num_replicas=1, rank=0, seed=0, lengths=None):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.batch_size = batch_size
        self.lengths = None if lengths is None else list(lengths)
        if self.lengths is not None and len(self.lengths) != len(dataset):
            raise ValueError(f"{len(self.lengths)} lengths for a dataset of {len(dataset)} samples")
        self.start_batch = 0

    def set_start_batch(self, start_batch):
        """Skip the first `start_batch` batches of this rank in the current epoch."""
        self.start_batch = int(start_batch)

    def _rank_indices(self):
        if self.lengths is None:
            return list(super().__iter__())
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.dataset), generator=generator).tolist()
        order += order[: self.total_size - len(order)]  # pad as DistributedSampler does
        global_batch = self.batch_size * self.num_replicas
        mega = global_batch * MEGABATCH_FACTOR
        indices = []
        for begin in range(0, len(order), mega):
            chunk = sorted(order[begin : begin + mega], key=lambda i: -self.lengths[i])
            for start in range(0, len(chunk), global_batch):
                indices += chunk[start : start + global_batch][self.rank :: self.num_replicas]
        return indices

    def __iter__(self):
        return iter(self._rank_indices()[self.start_batch * self.batch_size :])

    def __len__(self):
        return max(self.num_samples - self.start_batch * self.batch_size, 0)
