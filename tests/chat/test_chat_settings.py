"""Generation settings are checked when they are set, by every way of setting them: the CLI's
`key=value` text, the web UI's controls, attributes and `set` of the Python API, the session's
seed and the model's `generate_from_ids` (property-based over typed text, plus the issue's cases)."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lavis.chat import ChatSession, GenerationSettings
from lavis.common.generation import RULES, GenerationSettingError


@dataclasses.dataclass
class StubModel:
    """What a ChatSession asks of its chat model before it generates: default settings."""

    def default_settings(self):
        return GenerationSettings()


KEYS = GenerationSettings.keys()


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(KEYS + ["seed", "beams", ""]), value=st.text(max_size=20), spaces=st.booleans())
def test_typed_assignments_set_a_valid_value_or_change_nothing(key, value, spaces):
    """`:conf key=value` as typed: either the setting now holds a value in range, or a
    GenerationSettingError (a ValueError, as the CLI catches) and every setting is unchanged."""
    current = GenerationSettings()
    before = current.to_dict()
    text = f" {key} = {value} " if spaces else f"{key}={value}"
    try:
        name, converted = current.assign(text)
    except GenerationSettingError as err:
        assert str(err), err
        assert current.to_dict() == before
        return
    check = RULES[name][1]
    assert name in KEYS and getattr(current, name) == converted
    assert check is None or check(converted)


def test_assign_and_attributes_refuse_the_issues_values():
    current = GenerationSettings()
    for text, message in (
        ("temperature=inf", "temperature must be a finite number > 0, got 'inf'"),
        ("temperature=nan", "temperature must be a finite number > 0, got 'nan'"),
        ("num_beams=0", "num_beams must be an integer in 1..16, got '0'"),
        ("top_p=1.5", "top_p must be a number in (0, 1], got '1.5'"),
        ("max_new_tokens", "expected key=value, got 'max_new_tokens'"),
    ):
        with pytest.raises(GenerationSettingError) as caught:
            current.assign(text)
        assert str(caught.value) == message
    with pytest.raises(GenerationSettingError, match=r"^temperature must be a finite number > 0, got inf$"):
        current.temperature = float("inf")
    with pytest.raises(GenerationSettingError, match=r"^num_beams must be an integer in 1..16, got 0$"):
        GenerationSettings(num_beams=0)
    assert current == GenerationSettings()


@pytest.mark.parametrize("seed", [-1, 2**32, "x", 1.5, None])
def test_a_session_seed_out_of_range_is_refused_when_set(seed):
    session = ChatSession(StubModel(), seed=7)
    with pytest.raises(GenerationSettingError, match=r"^seed must be an integer in 0..4294967295, got "):
        session.seed = seed
    assert session.seed == 7
    with pytest.raises(GenerationSettingError):
        ChatSession(StubModel(), seed=seed)
    session.seed = str(2**32 - 1)
    assert session.seed == 2**32 - 1


def test_the_web_uis_controls_are_checked_as_conf_checks_them():
    import webui_demo

    web = webui_demo.WebChat(StubModel())
    assert web.settings(True, 2.0, 0.7, 5, 0.9, 6).num_beams == 2
    for controls, message in (
        ((False, 0, 1.0, 0, 1.0, 8), "num_beams must be an integer in 1..16, got 0"),
        ((True, 1, float("nan"), 0, 1.0, 8), "temperature must be a finite number > 0, got nan"),
        ((True, 1, 1.0, 0, None, 8), "top_p must be a number in (0, 1], got None"),
    ):
        with pytest.raises(GenerationSettingError) as caught:
            web.settings(*controls)
        assert str(caught.value) == message


def test_model_generate_refuses_bad_knobs_before_generating(tiny_model):
    for kwargs, message in (
        ({"num_beams": 0}, "num_beams must be an integer in 1..16, got 0"),
        ({"do_sample": True, "temperature": float("inf")}, "temperature must be a finite number > 0, got inf"),
        ({"max_new_tokens": -1}, "max_new_tokens must be an integer in 1..16384, got -1"),
    ):
        with pytest.raises(GenerationSettingError) as caught:
            tiny_model.generate({"image": None, "text": "hello"}, **kwargs)
        assert str(caught.value) == message
    assert isinstance(tiny_model.generate({"image": None, "text": "hello"}, max_new_tokens=2)[0], str)
