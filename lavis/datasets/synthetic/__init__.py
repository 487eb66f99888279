"""Synthetic datasets generated on the fly (no download): the tiny default run's data."""

from lavis.datasets.synthetic.shapes import (  # noqa: F401
    ANSWERS,
    COLOURS,
    QUESTIONS,
    SHAPES,
    corpus_lines,
    draw_shape,
    ensure_shapes_dataset,
)
