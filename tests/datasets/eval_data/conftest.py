"""Fixtures of the benchmark reader tests: tiny files in the released formats (tests/helpers/benchmark_files.py)."""

import pytest

from tests.helpers import benchmark_files as files


@pytest.fixture
def mme_root(tmp_path):
    return files.mme_root(tmp_path)


@pytest.fixture
def mmbench_tsv(tmp_path):
    return files.mmbench_tsv(tmp_path)


@pytest.fixture
def pope_files(tmp_path):
    return files.pope_files(tmp_path)


@pytest.fixture
def karpathy_files(tmp_path):
    return files.karpathy_files(tmp_path)


@pytest.fixture
def vqa_files(tmp_path):
    return files.vqa_files(tmp_path)


@pytest.fixture
def gqa_files(tmp_path):
    return files.gqa_files(tmp_path)


@pytest.fixture
def seed_files(tmp_path):
    return files.seed_files(tmp_path)
