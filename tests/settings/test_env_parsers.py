"""The one set of settings parsers (mcp_sentinel/env.py): properties over generated input."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mcp_sentinel.env import (
    FALSE_WORDS,
    TRUE_WORDS,
    SettingsError,
    choice,
    flag,
    integer,
    items,
    load_or_exit,
    number,
    parse_base_url,
    parse_bool,
    parse_duration,
    parse_http_url,
    parse_int,
    parse_listen,
    parse_number,
    text,
)

NAME = "SOME_SETTING"
WORDS = sorted(TRUE_WORDS | FALSE_WORDS)


def _mixed_case(word: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flip else c for c, flip in zip(word, flips + [False] * len(word), strict=False))


@given(st.sampled_from(WORDS), st.lists(st.booleans(), max_size=5), st.sampled_from(["", " ", "\t"]))
def test_boolean_words_parse_in_any_case_and_padding(word: str, flips: list[bool], pad: str) -> None:
    assert parse_bool(NAME, pad + _mixed_case(word, flips) + pad) is (word in TRUE_WORDS)


@given(st.text(max_size=12))
def test_anything_else_is_an_error_naming_the_variable_never_false(raw: str) -> None:
    assume(raw.strip().lower() not in TRUE_WORDS | FALSE_WORDS)
    with pytest.raises(SettingsError, match=NAME):
        parse_bool(NAME, raw)


@pytest.mark.parametrize("typo", ["ture", "flase", "yes please", "2", "enabled", "O"])
def test_a_typoed_boolean_in_the_environment_stops_the_read(typo: str) -> None:
    with pytest.raises(SettingsError, match=f"{NAME}.*{typo!r}"):
        flag({NAME: typo}, NAME)
    assert flag({NAME: "  "}, NAME, default=True) is True  # blank is unset: the default applies


@given(st.integers(), st.integers(min_value=-(10**6), max_value=10**6), st.integers(min_value=0, max_value=10**6))
def test_integers_round_trip_and_bounds_are_inclusive(value: int, low: int, width: int) -> None:
    high = low + width
    if low <= value <= high:
        assert parse_int(NAME, f" {value} ", minimum=low, maximum=high) == value
    else:
        with pytest.raises(SettingsError, match=NAME):
            parse_int(NAME, str(value), minimum=low, maximum=high)
    assert parse_int(NAME, str(value)) == value  # no bounds: every integer


@given(st.text(max_size=10))
def test_non_decimal_integers_are_refused(raw: str) -> None:
    assume(re.fullmatch(r"[+-]?[0-9]+", raw.strip()) is None)
    with pytest.raises(SettingsError, match=NAME):
        parse_int(NAME, raw)


@pytest.mark.parametrize("raw", ["1_000", "1.0", "0x10", "١٢", "", "1e3", "--1"])
def test_integer_spellings_python_would_take_but_settings_do_not(raw: str) -> None:
    with pytest.raises(SettingsError, match=NAME):
        parse_int(NAME, raw)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_numbers_are_finite(value: float) -> None:
    if math.isfinite(value):
        assert parse_number(NAME, repr(value)) == value
    else:
        with pytest.raises(SettingsError, match=NAME):
            parse_number(NAME, repr(value))


def test_positive_numbers_exclude_zero_and_bounds_apply() -> None:
    with pytest.raises(SettingsError, match=f"{NAME} must be positive"):
        number({NAME: "0"}, NAME, 1.0, positive=True)
    with pytest.raises(SettingsError, match=f"{NAME} must be <= 5"):
        number({NAME: "5.5"}, NAME, 1.0, maximum=5)
    with pytest.raises(SettingsError, match=f"{NAME} must be a number"):
        number({NAME: "fast"}, NAME, 1.0)
    assert number({}, NAME, 1.5, positive=True) == 1.5


_PART = st.one_of(st.none(), st.integers(min_value=0, max_value=1000))


@given(_PART, _PART, _PART, _PART)
def test_iso8601_durations_add_up(d: int | None, h: int | None, m: int | None, s: int | None) -> None:
    time = "".join(f"{v}{u}" for v, u in ((h, "H"), (m, "M"), (s, "S")) if v is not None)
    raw = "P" + (f"{d}D" if d is not None else "") + (f"T{time}" if time else "")
    expected = (d or 0) * 86400 + (h or 0) * 3600 + (m or 0) * 60 + (s or 0)
    if raw == "P":
        with pytest.raises(SettingsError, match=NAME):
            parse_duration(NAME, raw)
    else:
        assert parse_duration(NAME, raw.lower()) == expected


@pytest.mark.parametrize("raw", ["5s", "PT", "P", "PTS", "", "P1DT", "PT-1S", "T1S"])
def test_malformed_durations_name_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match=NAME):
        parse_duration(NAME, raw)


@given(st.lists(st.text(alphabet="ab c", max_size=4), max_size=6))
def test_lists_drop_blanks_and_keep_order(parts: list[str]) -> None:
    got = items({NAME: ",".join(parts)}, NAME)
    assert got == tuple(p.strip() for p in parts if p.strip())
    assert all(got) and items({}, NAME) == ()


@pytest.mark.parametrize("raw", ["localhost:8080", "ftp://host/", "http://", "http://host:99999/", "/relative",
                                 "http://host:port/"])
def test_urls_must_be_absolute_http(raw: str) -> None:
    with pytest.raises(SettingsError, match=NAME):
        parse_http_url(NAME, raw)


def test_base_urls_drop_query_fragment_and_trailing_slash() -> None:
    assert parse_base_url(NAME, " https://h:8443/a/b/?x=1#f ") == "https://h:8443/a/b"
    assert parse_http_url(NAME, "https://h/jwks/") == "https://h/jwks/"  # whole URLs stay as written


@given(st.integers(min_value=-5, max_value=70000))
def test_listen_addresses(port: int) -> None:
    if 0 < port < 65536:
        assert parse_listen(NAME, f"127.0.0.1:{port}") == ("127.0.0.1", port)
    else:
        with pytest.raises(SettingsError, match=NAME):
            parse_listen(NAME, f"127.0.0.1:{port}")
    for bad in ("8080", ":8080", "host:", "host:http"):
        with pytest.raises(SettingsError, match=NAME):
            parse_listen(NAME, bad)


def test_choices_and_text() -> None:
    assert choice({NAME: " Linear "}, NAME, "exponential", ("exponential", "linear")) == "linear"
    with pytest.raises(SettingsError, match=f"{NAME} must be one of exponential, linear, got 'lin'"):
        choice({NAME: "lin"}, NAME, "exponential", ("exponential", "linear"))
    assert text({NAME: "  "}, NAME, "dflt") == "dflt"
    assert integer({NAME: ""}, NAME, 7, minimum=10) == 7  # the code's own default is not range-checked


def test_load_or_exit_prints_the_component_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    def bad() -> int:
        return integer({NAME: "many"}, NAME, 1)

    with pytest.raises(SystemExit) as exited:
        load_or_exit("thing", bad)
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == f"thing: {NAME} must be an integer, got 'many'"
    with pytest.raises(KeyError):  # anything that is not a settings error keeps its traceback
        load_or_exit("thing", lambda: {}["x"])
    with pytest.raises(SystemExit):
        load_or_exit("thing", lambda: int("x"), ValueError)
