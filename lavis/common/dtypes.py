"""The one table from config dtype names to torch dtypes (used by every layer above).

Config keys (`model.llm_dtype`, `model.autocast_dtype`, `run.autocast_dtype`,
`run.cached_features_dtype`) use the short names; transformers' `config.json` files spell
them out (`torch_dtype: bfloat16`), which :func:`dtype_named` also reads.
"""

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: transformers' spelling of the same dtypes, as `config.json` files write them
LONG_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
#: the dtypes autocast can compute in
AUTOCAST_DTYPES = ("bf16", "fp16")


def dtype_named(name):
    """The torch dtype of a short or long name (KeyError for any other)."""
    return DTYPES[LONG_NAMES.get(name, name)]


def autocast_dtype_named(name):
    """The torch dtype autocast computes in for `name` (bf16 / fp16; KeyError for any other)."""
    if name not in AUTOCAST_DTYPES:
        raise KeyError(name)
    return DTYPES[name]


def is_dtype_name(name):
    return isinstance(name, str) and LONG_NAMES.get(name, name) in DTYPES
