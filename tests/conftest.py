"""Shared fixtures: a tiny model of the real architecture and a small synthetic dataset."""

import pytest
import torch

import lavis  # noqa: F401  (registers every component)
from lavis.datasets.synthetic.shapes import ensure_shapes_dataset
from lavis.models import load_model


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory):
    """A small synthetic shapes dataset (40 train / 12 val samples)."""
    return ensure_shapes_dataset(tmp_path_factory.mktemp("shapes"), num_train=40, num_val=12, image_size=64, seed=0)


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return load_model("minigpt4qwen", "tiny")
