"""`errors.report`: how every entry point prints a UserError (one `error:` line, exit status 2),
also for one raised in a DataLoader worker, which torch re-raises with the worker's traceback
in its message."""

import pytest
from torch.utils.data import DataLoader, Dataset

from lavis.common.errors import EXIT_STATUS, MissingFilesError, UserError, report


class Broken(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        raise UserError(f"no readable image in the whole dataset (sample {index})")


def test_one_line_and_exit_status_2(capsys):
    assert report(UserError("config: run.seed = -1: must be an integer in 0..4294967295")) == EXIT_STATUS == 2
    assert capsys.readouterr().err == "error: config: run.seed = -1: must be an integer in 0..4294967295\n"
    report(MissingFilesError([("model.vit_ckpt", "/x/eva.pth", "EVA-ViT-G weights")]), fold=True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: 1 file(s) this config needs are missing: - model.vit_ckpt:")


def test_an_error_from_a_dataloader_worker_prints_its_own_line(capsys):
    loader = DataLoader(Broken(), num_workers=1, collate_fn=lambda batch: batch)
    with pytest.raises(UserError) as caught:
        next(iter(loader))
    assert "Original Traceback" in str(caught.value)  # what torch hands the main process
    report(caught.value, "rank 0: ")
    assert capsys.readouterr().err == "error: rank 0: no readable image in the whole dataset (sample 0)\n"
