"""The tiny default model's vocabulary: a byte-level BPE in qwen.tiktoken format.

Trained on the synthetic shapes corpus (`shapes.corpus_lines()`), so the default run's
sequences stay short.  The file is shipped at TINY_VOCAB_PATH and a test checks that
`python -m lavis.datasets.synthetic.tiny_vocab` regenerates it byte for byte.
"""

import os

from lavis.datasets.synthetic.shapes import corpus_lines
from lavis.models.llm.bpe_train import train_bpe, write_tiktoken_file

NUM_MERGES = 400
TINY_VOCAB_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "configs",
    "models",
    "minigpt4qwen",
    "tiny",
    "qwen.tiktoken",
)


def build_tiny_vocab(path=TINY_VOCAB_PATH):
    write_tiktoken_file(train_bpe(corpus_lines(), NUM_MERGES), path)
    return path


if __name__ == "__main__":
    print(build_tiny_vocab())
