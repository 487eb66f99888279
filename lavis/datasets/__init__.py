"""Datasets: annotation readers, builders (registered), synthetic data generators."""

from lavis.datasets import builders  # noqa: F401  (registration)
