"""The dashboard's formatting helpers: relative times for every interval, past and future."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from service.web.templates import relative, when

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
UNITS = {"min": 60, "h": 3600, "d": 86400}
TEXT = re.compile(r"^(?:in )?(\d+) (min|h|d)(?: ago)?$")
# Anything from the earliest to the latest datetime, to the microsecond; and, as often, an
# interval drawn on a log scale (1 s to 100 years), so each unit and boundary gets its share.
OFFSETS = st.one_of(
    st.timedeltas(
        min_value=datetime.min.replace(tzinfo=UTC) - NOW,
        max_value=datetime.max.replace(tzinfo=UTC) - NOW,
    ),
    st.tuples(st.sampled_from((-1, 1)), st.floats(min_value=0, max_value=9.5)).map(
        lambda sign_power: timedelta(seconds=sign_power[0] * 10 ** sign_power[1])
    ),
)


@settings(max_examples=1000)
@given(OFFSETS)
def test_every_interval_has_one_sensible_text(offset: timedelta) -> None:
    text = relative(NOW + offset, NOW)
    seconds = offset.total_seconds()
    if abs(seconds) < 45:
        assert text == ("in a moment" if seconds > 0 else "just now")
        return
    found = TEXT.match(text)
    assert found, text
    assert text.startswith("in ") == (seconds > 0)
    assert text.endswith(" ago") == (seconds < 0)
    amount, unit = int(found.group(1)), UNITS[found.group(2)]
    assert amount >= 1
    # The amount is the interval in that unit, to within one unit (rounded or cut down).
    assert abs(abs(seconds) - amount * unit) <= unit
    # The unit is the largest that fits (no "90 min", no "0 h").
    if unit == 60:
        assert amount <= 59 and abs(seconds) < 3600
    if unit == 3600:
        assert amount <= 23 and abs(seconds) >= 3600


def test_the_boundaries() -> None:
    cases = {
        0: "just now",
        -44.9: "just now",
        -45: "1 min ago",
        -59: "1 min ago",
        50: "in 1 min",
        -89: "1 min ago",
        -3599: "59 min ago",
        -3600: "1 h ago",
        7200: "in 2 h",
        -86399: "23 h ago",
        -86400: "1 d ago",
        40 * 86400: "in 40 d",
    }
    for seconds, expected in cases.items():
        assert relative(NOW + timedelta(seconds=seconds), NOW) == expected, seconds
    assert relative(None, NOW) == "never"
    # And every whole second of two days either way has a text.
    for second in range(-2 * 86400, 2 * 86400):
        assert relative(NOW + timedelta(seconds=second), NOW)


def test_time_element_carries_the_exact_time() -> None:
    html = str(when(NOW - timedelta(seconds=50), NOW))
    assert 'datetime="2026-06-15T11:59:10+00:00"' in html
    assert "2026-06-15 11:59:10 UTC" in html and ">1 min ago<" in html
