"""The valid values of the generation knobs, stated once for every place that takes them.

The chat layer's :class:`~lavis.chat.settings.GenerationSettings` (the CLI's `:conf` and `:seed`,
the web UI's controls, the Python API) and the model's `generate_from_ids` / `generate` all check
a value with :func:`check_setting`, so a seed outside 0..2**32-1, a temperature of `inf` or `nan`
or `num_beams: 0` is refused where it is set, with the valid range, instead of failing inside
`generate` later.
"""

import math

from lavis.common.errors import UserError

#: The most beams and new tokens a generation may ask for (the run config's limits too)
MAX_BEAMS = 16
MAX_NEW_TOKENS = 16384


class GenerationSettingError(UserError, ValueError):
    """A generation setting outside its valid values (named, with what is allowed)."""


def _parse_bool(value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(value)


def _integer(value):
    """An int from an int, an integral float or its text; bools and other values are refused."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    return int(value.strip()) if isinstance(value, str) else int(value)


def _finite(value):
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


#: key -> (conversion, check of the converted value, what is valid)
RULES = {
    "do_sample": (_parse_bool, None, "true or false"),
    "top_p": (_finite, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "top_k": (_integer, lambda v: v >= 0, "an integer >= 0 (0: off)"),
    "temperature": (_finite, lambda v: v > 0, "a finite number > 0"),
    "num_beams": (_integer, lambda v: 1 <= v <= MAX_BEAMS, f"an integer in 1..{MAX_BEAMS}"),
    "max_new_tokens": (_integer, lambda v: 1 <= v <= MAX_NEW_TOKENS, f"an integer in 1..{MAX_NEW_TOKENS}"),
    "repetition_penalty": (_finite, lambda v: v > 0, "a finite number > 0"),
    "max_window_size": (_integer, lambda v: v >= 16, "an integer >= 16"),
    "seed": (_integer, lambda v: 0 <= v <= 2**32 - 1, f"an integer in 0..{2**32 - 1}"),
}


def check_setting(key, value):
    """`value` (or its text) for setting `key`, converted; GenerationSettingError naming the key
    and its valid values otherwise."""
    if key not in RULES:
        raise GenerationSettingError(f"unknown setting {key!r}; settings: {', '.join(RULES)}")
    convert, check, valid = RULES[key]
    try:
        converted = convert(value)
    except (TypeError, ValueError, OverflowError):
        raise GenerationSettingError(f"{key} must be {valid}, got {value!r}") from None
    if check is not None and not check(converted):
        raise GenerationSettingError(f"{key} must be {valid}, got {value!r}")
    return converted


def check_generate_kwargs(kwargs):
    """`generate` arguments with each knob :data:`RULES` knows checked (and converted); others pass."""
    return {key: check_setting(key, value) if key in RULES else value for key, value in kwargs.items()}
