"""Synthetic datasets generated on the fly (no download): the tiny default run's data (shapes),
a video set (moving_shapes) and a multi-image set (shape_pairs)."""

from lavis.datasets.synthetic.shapes import (  # noqa: F401
    ANSWERS,
    COLOURS,
    QUESTIONS,
    SHAPES,
    corpus_lines,
    draw_shape,
    ensure_shapes_dataset,
)
