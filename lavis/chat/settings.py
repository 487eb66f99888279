"""The knobs of generation: :class:`GenerationSettings` and the parsing of typed values.

A session carries one (`:conf` in the CLI and the web UI's controls change it); each answer
uses a copy, turned into `generate` arguments by :meth:`GenerationSettings.generate_kwargs`.
"""

import dataclasses

#: The original demo's context window for Qwen-7B-Chat (8192 positions).
MAX_WINDOW_SIZE = 6144


def _parse_bool(value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


@dataclasses.dataclass
class GenerationSettings:
    """What `:conf` shows and changes (and the web UI's controls)."""

    do_sample: bool = False
    top_p: float = 1.0
    top_k: int = 0
    temperature: float = 1.0
    num_beams: int = 1
    max_new_tokens: int = 512
    repetition_penalty: float = 1.0
    max_window_size: int = MAX_WINDOW_SIZE

    _RULES = {
        "do_sample": (_parse_bool, None, "true or false"),
        "top_p": (float, lambda v: 0 < v <= 1, "in (0, 1]"),
        "top_k": (int, lambda v: v >= 0, "an integer >= 0 (0: off)"),
        "temperature": (float, lambda v: v > 0, "> 0"),
        "num_beams": (int, lambda v: 1 <= v <= 16, "an integer in 1..16"),
        "max_new_tokens": (int, lambda v: 1 <= v <= 16384, "an integer in 1..16384"),
        "repetition_penalty": (float, lambda v: v > 0, "> 0"),
        "max_window_size": (int, lambda v: v >= 16, "an integer >= 16"),
    }

    def __post_init__(self):
        for key in self.keys():
            self.set(key, getattr(self, key))

    @classmethod
    def keys(cls):
        return [f.name for f in dataclasses.fields(cls)]

    def set(self, key, value):
        """Set one setting from a value or its text; ValueError names the key and valid values."""
        if key not in self._RULES:
            raise ValueError(f"unknown setting {key!r}; settings: {', '.join(self.keys())}")
        convert, check, valid = self._RULES[key]
        try:
            if convert is int and isinstance(value, str):
                converted = int(value.strip())
            elif convert is int and isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                converted = int(value)
            elif convert is int and isinstance(value, bool):
                raise ValueError
            else:
                converted = convert(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be {valid}, got {value!r}") from None
        if check is not None and not check(converted):
            raise ValueError(f"{key} must be {valid}, got {value!r}")
        object.__setattr__(self, key, converted)
        return converted

    def assign(self, assignment):
        """`key=value` text (as typed after `:conf`) -> (key, new value)."""
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value, got {assignment!r}")
        key = key.strip()
        return key, self.set(key, value.strip())

    def to_dict(self):
        return {key: getattr(self, key) for key in self.keys()}

    def generate_kwargs(self):
        """Arguments for `generate`: sampling knobs only when sampling (no warnings)."""
        kwargs = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "num_beams": self.num_beams,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        return kwargs
