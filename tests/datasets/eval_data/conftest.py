"""Fixtures of the benchmark reader tests: tiny files in the released formats, each written into
the test's tmp_path by the writer of the same name in tests/helpers/benchmark_files.py."""

import pytest

from tests.helpers import benchmark_files as files


def _fixture(name):
    writer = getattr(files, name)
    return pytest.fixture(name=name)(lambda tmp_path: writer(tmp_path))


for _name in ("mme_root", "mmbench_tsv", "pope_files", "karpathy_files", "vqa_files", "gqa_files", "seed_files"):
    globals()[_name] = _fixture(_name)
