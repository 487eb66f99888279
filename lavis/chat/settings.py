"""The knobs of generation: :class:`GenerationSettings` and the parsing of typed values.

A session carries one (`:conf` in the CLI and the web UI's controls change it); each answer
uses a copy, turned into `generate` arguments by :meth:`GenerationSettings.generate_kwargs`.
Every value, the session's seed included, is checked when it is set, by the one validation of
generation knobs, `lavis.common.generation.check_setting` (which the model's `generate` uses too).
"""

import dataclasses

from lavis.common.generation import GenerationSettingError, check_setting

#: The original demo's context window for Qwen-7B-Chat (8192 positions).
MAX_WINDOW_SIZE = 6144


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

    def __setattr__(self, key, value):  # `settings.temperature = x` is checked as `set` checks it
        self.set(key, value)

    @classmethod
    def keys(cls):
        return [f.name for f in dataclasses.fields(cls)]

    def set(self, key, value):
        """Set one setting from a value or its text; GenerationSettingError (a ValueError) names
        the key and its valid values."""
        if key not in self.keys():
            raise GenerationSettingError(f"unknown setting {key!r}; settings: {', '.join(self.keys())}")
        converted = check_setting(key, value)
        object.__setattr__(self, key, converted)
        return converted

    def assign(self, assignment):
        """`key=value` text (as typed after `:conf`) -> (key, new value)."""
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise GenerationSettingError(f"expected key=value, got {assignment!r}")
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
