"""How the dashboard writes times, durations and statuses for people: pure functions, no Streamlit.

Every time is shown in one zone (LOREGUARD_TIMEZONE, UTC by default) and always carries its label.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

import pandas as pd

STATUS_WORDS = {
    "awaiting_approval": "awaiting approval",
    "timed_out": "timed out",
    "reject_by_timeout": "rejected by timeout",
}


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def when(value: datetime | None, zone_name: str = "UTC", *, seconds: bool = True) -> str:
    """'2026-12-02 10:15:03 CET' in the configured zone; '—' when there is no time."""
    if value is None or value != value:  # None or NaT
        return "—"
    local = value.astimezone(zone(zone_name))
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def in_zone(frame: pd.DataFrame, zone_name: str) -> pd.DataFrame:
    """The frame with every datetime column (timezone-aware, or Python datetimes) moved to the zone."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            out[name] = column.dt.tz_convert(zone_name)
        elif column.dtype == object:
            present = column.dropna()
            if len(present) and isinstance(present.iloc[0], datetime):
                out[name] = pd.to_datetime(column, utc=True).dt.tz_convert(zone_name)
    return out


DASH = "—"  # what a table shows where a value is missing (Streamlit would draw "None")
_MOMENT_TOKENS = (("YYYY", "%Y"), ("MM", "%m"), ("DD", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S"))


def strftime_format(moment: str | None) -> str:
    """A column config's moment.js time format ("YYYY-MM-DD HH:mm") as strftime's; to the second without."""
    if not moment:
        return "%Y-%m-%d %H:%M:%S"
    for token, directive in _MOMENT_TOKENS:
        moment = moment.replace(token, directive)
    return moment


def dashed(frame: pd.DataFrame, formats: dict[str, str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The frame with a dash wherever a value is missing in a time or text column, where a table would show
    "None": a time column with a gap becomes text (each time in `formats[name]`, a moment.js format, else to
    the second; times already in the zone they are shown in). Returns the frame and the time columns so made
    text."""
    out = frame.copy()
    texted: list[str] = []
    for name in out.columns:
        column = out[name]
        if not column.isna().any():
            continue
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            pattern = strftime_format((formats or {}).get(str(name)))
            out[name] = [DASH if v is pd.NaT or v != v else v.strftime(pattern) for v in column]
            texted.append(str(name))
        elif column.dtype == object or isinstance(column.dtype, pd.StringDtype):
            out[name] = column.astype(object).where(column.notna(), DASH)
    return out, texted


def duration(seconds: float | None) -> str:
    """'45 s', '3 min', '2 h 5 min', '3 d 4 h': a wait or an elapsed time as a person reads it."""
    if seconds is None or seconds != seconds:
        return "—"
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {secs} s" if secs and minutes < 10 else "")
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def every(seconds: int | None) -> str:
    """A refresh interval: 'every 1 h', 'every 15 min', 'every 1 d 12 h'."""
    return "—" if seconds is None else f"every {duration(seconds)}"


def status_word(status: str | None) -> str:
    """'awaiting approval' for awaiting_approval: statuses as words, never a raw None."""
    if status is None or status != status:
        return "—"
    return STATUS_WORDS.get(status, status.replace("_", " "))
