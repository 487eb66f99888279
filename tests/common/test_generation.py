"""The one validation of generation knobs (`lavis.common.generation`): each value is either
converted into its valid range or refused with a GenerationSettingError naming the key and what
is allowed, never another exception (property-based, over arbitrary values and their text)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lavis.common.errors import UserError
from lavis.common.generation import RULES, GenerationSettingError, check_generate_kwargs, check_setting

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.integers(min_value=-(2**40), max_value=2**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(sorted(RULES)), value=VALUES)
def test_a_value_is_converted_into_range_or_refused_with_the_key_and_range(key, value):
    _, check, valid = RULES[key]
    try:
        converted = check_setting(key, value)
    except GenerationSettingError as err:
        assert str(err) == f"{key} must be {valid}, got {value!r}"
        return
    if isinstance(converted, float):
        assert math.isfinite(converted)
    assert check is None or check(converted)


@pytest.mark.parametrize(
    ("key", "value", "valid"),
    [
        ("temperature", float("inf"), "a finite number > 0"),
        ("temperature", float("nan"), "a finite number > 0"),
        ("temperature", "0", "a finite number > 0"),
        ("top_p", 0, "a number in (0, 1]"),
        ("top_p", "nan", "a number in (0, 1]"),
        ("num_beams", 0, "an integer in 1..16"),
        ("num_beams", 1.5, "an integer in 1..16"),
        ("max_new_tokens", True, "an integer in 1..16384"),
        ("repetition_penalty", "-inf", "a finite number > 0"),
        ("seed", -1, "an integer in 0..4294967295"),
        ("seed", 2**32, "an integer in 0..4294967295"),
    ],
)
def test_the_issues_values_are_refused(key, value, valid):
    with pytest.raises(GenerationSettingError) as caught:
        check_setting(key, value)
    assert str(caught.value) == f"{key} must be {valid}, got {value!r}"
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)


def test_edges_of_the_ranges_are_accepted():
    assert check_setting("seed", 0) == 0 and check_setting("seed", str(2**32 - 1)) == 2**32 - 1
    assert check_setting("top_p", "1") == 1.0 and check_setting("num_beams", 16.0) == 16
    assert check_setting("do_sample", "off") is False


def test_generate_kwargs_are_checked_and_other_arguments_pass():
    assert check_generate_kwargs({"num_beams": "2", "suppress_tokens": [1]}) == {"num_beams": 2, "suppress_tokens": [1]}
    with pytest.raises(GenerationSettingError, match=r"^num_beams must be an integer in 1..16, got 0$"):
        check_generate_kwargs({"num_beams": 0})
    with pytest.raises(GenerationSettingError, match=r"^unknown setting 'beams'"):
        check_setting("beams", 1)
