"""The dashboard's Jinja2 environment and the formatting its templates use."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from service.web.charts import clock

TEMPLATES = Path(__file__).parent / "templates"


def relative(when: datetime | None, now: datetime) -> str:
    """``3 min ago``, ``in 2 h``, ``just now``; ``never`` for None.

    Under 45 s is "just now"; then whole minutes (1 to 59, rounded), whole hours (1 to 23,
    rounded down) and whole days, so every interval, past or future, has exactly one text.
    """
    if when is None:
        return "never"
    seconds = (when - now).total_seconds()
    future, seconds = seconds > 0, abs(seconds)
    if seconds < 45:
        return "in a moment" if future else "just now"
    if seconds < 3600:
        text = f"{min(59, max(1, round(seconds / 60)))} min"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)} h"
    else:
        text = f"{int(seconds // 86400)} d"
    return f"in {text}" if future else f"{text} ago"


def utc_text(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def when(value: datetime | None, now: datetime) -> Markup:
    """A ``<time>`` element: relative text, the exact UTC time as its tooltip."""
    if value is None:
        return Markup('<span class="muted">never</span>')
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        value.astimezone(UTC).isoformat(), utc_text(value), relative(value, now)
    )


def local(value: datetime | None, zone: str | None = None) -> str:
    """The time in the workout's own time zone (UTC when it has none or an unknown one)."""
    if value is None:
        return "—"
    try:
        tz = ZoneInfo(zone) if zone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        tz = UTC
    shown = value.astimezone(tz)
    return f"{shown:%a %d %b %Y, %H:%M} {shown.tzname() or 'UTC'}"


def day(value: datetime | None) -> str:
    """The UTC date: ``1 Jan 2000``."""
    return "—" if value is None else f"{value.astimezone(UTC):%d %b %Y}".lstrip("0")


def duration(seconds: float | None) -> str:
    return "—" if seconds is None else clock(seconds)


def distance(metres: float | None) -> str:
    if metres is None:
        return "—"
    return f"{metres / 1000:.2f} km" if metres >= 100 else f"{metres:.0f} m"


def number(value: float | None, unit: str = "", decimals: int = 0) -> str:
    if value is None:
        return "—"
    text = f"{value:,.{decimals}f}"
    return f"{text} {unit}".strip()


def label(value: str | None) -> str:
    """``needs_reauth`` -> ``needs reauth``, ``bike_bootcamp`` -> ``bike bootcamp``."""
    return (value or "").replace("_", " ")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        duration=duration,
        distance=distance,
        number=number,
        label=label,
        local=local,
        day=day,
    )
    env.globals.update(when=when, relative=relative, escape=escape)
    return env


ENV = _environment()


def render_page(name: str, context: dict[str, Any]) -> str:
    return ENV.get_template(name).render(context)
