"""Several training datasets mixed by `sample_ratio` (as MiniGPT-4's configs name it), exactly resumable.

The runner builds a :class:`MixtureDataset` when the run's datasets give a `sample_ratio`: an
epoch holds as many samples as the datasets together (`size`), of which dataset d contributes
its share `ratio_d / sum(ratios)` (largest-remainder rounding).  Which rows fill a dataset's share
is drawn from (seed, epoch): a random order of its rows, repeated when its share is larger than
it (an upsampled small dataset), cut to the share.  The index map is therefore a function of
(seed, epoch) alone, so the sampler's order on top of it (`runners/samplers.py`) resumes exactly,
and every rank builds the same map.  Samples are mixed within batches (MiniGPT-4 draws a whole
batch from one dataset instead).
"""

import logging

import torch
from torch.utils.data import Dataset

from lavis.common.config import ConfigError


def shared_collater(parts):
    """The `collater` the datasets batched together share (as in LAVIS, each dataset brings its own)."""
    functions = {getattr(part.collater, "__func__", part.collater) for part in parts}  # bound or static
    if len(functions) != 1:
        names = sorted({type(part).__name__ for part in parts})
        raise ConfigError(f"datasets batched together need one collater; these have {len(functions)}: {names}")
    return parts[0].collater


def shares(size, ratios):
    """`size` split by `ratios` into whole counts that add up to `size` (largest remainders)."""
    total = float(sum(ratios))
    exact = [size * r / total for r in ratios]
    counts = [int(e) for e in exact]
    by_remainder = sorted(range(len(ratios)), key=lambda k: (-(exact[k] - counts[k]), k))
    for k in by_remainder[: size - sum(counts)]:
        counts[k] += 1
    return counts


class MixtureDataset(Dataset):
    def __init__(self, parts, ratios, names, size=None):
        if not parts or len(parts) != len(ratios) != len(names):
            raise ValueError("a mixture needs one ratio and one name per dataset")
        if any(not r > 0 for r in ratios):
            raise ValueError(f"sample_ratio must be > 0, got {dict(zip(names, ratios))}")
        self.parts, self.ratios, self.names = list(parts), [float(r) for r in ratios], list(names)
        self.collater = shared_collater(self.parts)
        self.size = int(size or sum(len(p) for p in parts))
        self.counts = shares(self.size, self.ratios)
        self._part_lengths = {}
        self.set_epoch(0, 0)
        logging.info(
            "mixture of %d samples per epoch: %s",
            self.size,
            ", ".join(
                f"{n} {c} of {len(p)} rows (ratio {r:g})" for n, c, p, r in zip(names, self.counts, parts, ratios)
            ),
        )

    def set_epoch(self, seed, epoch):
        """Draw this epoch's rows of each dataset from (seed, epoch); the parts' own per-sample
        randomness follows the same (seed, epoch)."""
        generator = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) * 7_919 + 17)
        self.index = []
        for k, (part, count) in enumerate(zip(self.parts, self.counts)):
            rows = []
            while len(rows) < count:
                rows += torch.randperm(len(part), generator=generator).tolist()
            self.index += [(k, row) for row in rows[:count]]
        for part in self.parts:
            if hasattr(part, "set_epoch"):
                part.set_epoch(seed, epoch)

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        k, row = self.index[index]
        return self.parts[k][row]

    def lengths(self, image_tokens):
        """The length estimates of this epoch's samples (each part's estimated once)."""
        if image_tokens not in self._part_lengths:
            self._part_lengths[image_tokens] = [part.lengths(image_tokens) for part in self.parts]
        per_part = self._part_lengths[image_tokens]
        return [per_part[k][row] for k, row in self.index]
