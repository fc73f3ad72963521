"""How the dashboard writes durations, intervals, statuses and times for people."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from core.settings import Settings
from dashboard.formatting import duration, every, in_zone, status_word, when


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (0.4, "0 s"),
        (45, "45 s"),
        (125, "2 min 5 s"),
        (900, "15 min"),
        (3600, "1 h"),
        (7500, "2 h 5 min"),
        (86400 * 3 + 3600 * 4, "3 d 4 h"),
    ],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_intervals_and_statuses_read_as_words() -> None:
    assert every(3600) == "every 1 h"
    assert every(None) == "—"
    assert status_word("awaiting_approval") == "awaiting approval"
    assert status_word(None) == "—"


def test_times_carry_their_zone() -> None:
    moment = datetime(2026, 12, 2, 9, 15, 3, tzinfo=UTC)
    assert when(moment) == "2026-12-02 09:15:03 UTC"
    assert when(moment, "Europe/Berlin") == "2026-12-02 10:15:03 CET"
    assert when(None) == "—"
    frame = in_zone(pd.DataFrame({"at": [moment], "n": [1]}), "Europe/Berlin")
    assert str(frame["at"].dt.tz) == "Europe/Berlin" and frame["at"][0].hour == 10


def test_an_unknown_time_zone_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOREGUARD_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        Settings()
