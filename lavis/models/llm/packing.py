"""Sequence packing: several training samples in one row of the LLM's batch (`run.packing`).

Place in the flow: `MiniGPT4Qwen.forward` encodes a batch's conversations, asks `pack_rows` which
samples share a row and `packed_batch` for the row tensors, and runs the decoder with per-sample
`position_ids` and no attention mask.  transformers (5.x `masking_utils`) reads a restart of the
positions as the start of a new sequence and builds a block-diagonal causal mask (the flash
attention path takes the same position ids as variable-length sequences), so no token attends
to another sample: the loss equals the unpacked batch's.  Padding then only fills the end of the
rows, which are fewer: the positions the decoder computes fall towards the real token count.
The row layout is ours because it follows our samples (the image embeddings are reordered with
them); no library packs already-tokenised multimodal samples per batch.
"""

import torch

from lavis.processors.chat_format import IGNORE_INDEX


def pack_rows(lengths, capacity):
    """Which samples share each row: first-fit decreasing into rows of at most `capacity` tokens
    (a sample longer than that gets a row of its own).  Rows keep their samples' original order.

    >>> pack_rows([5, 3, 4, 2], capacity=7)
    [[0, 3], [1, 2]]
    """
    rows, room = [], []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return sorted(sorted(row) for row in rows)


def packed_batch(encoded, rows, pad_id, device):
    """(input_ids, labels, position_ids) of the packed rows, each (rows, longest row).

    encoded: the samples' EncodedConversations; rows: `pack_rows`' answer.  Positions restart at 0
    for every sample.  Each sample's first label is ignored: unpacked, position 0 is never
    predicted; packed, it would be predicted from the sample before it.  Rows are padded at the end
    (pad ids, ignored labels, positions running on, so the padding joins the row's last sample,
    which never attends to it).
    """
    ids, labels, positions = [], [], []
    for row in rows:
        row_ids, row_labels, row_positions = [], [], []
        for i in row:
            e = encoded[i]
            row_ids += e.input_ids
            row_labels += [IGNORE_INDEX, *e.labels[1:]]
            row_positions += range(len(e.input_ids))
        ids.append(row_ids)
        labels.append(row_labels)
        positions.append(row_positions)
    longest = max(len(r) for r in ids)
    for row_ids, row_labels, row_positions in zip(ids, labels, positions):
        extra = longest - len(row_ids)
        row_ids += [pad_id] * extra
        row_labels += [IGNORE_INDEX] * extra
        row_positions += range(row_positions[-1] + 1, row_positions[-1] + 1 + extra)

    def tensor(rows_):
        return torch.tensor(rows_, dtype=torch.long, device=device)

    return tensor(ids), tensor(labels), tensor(positions)
