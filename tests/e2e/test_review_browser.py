"""The analysts' loop in a real browser (Chromium, signed in through a real OpenID provider) against a running
`loreguard up`: an analyst confirms one verdict with the keyboard, overrides one with a reason, confirms the rest
of a filter in bulk, starts a re-evaluation and cancels it; a manager reads how often people overrode the model.
Screenshots go to test-output/e2e/ (review-*.png)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.support.browser import (
    OUTPUT,
    Provider,
    Stack,
    cli,
    open_page,
    query,
    shoot,
    signed_in,
    signed_running_stack,
)
from tests.support.corpus import write_corpus

pytestmark = [pytest.mark.browser, pytest.mark.temporal, pytest.mark.slow]

ANALYST = "ana.analyst@example.org"
MANAGER = "max.manager@example.org"
REPORTED = 4
LARGE = 800  # documents of the second source: four pages of a re-evaluation, two seconds apart


@pytest.fixture(scope="module")
def review_stack(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`loreguard up` with sign-in; no confidence threshold for the review inbox (doubtful and reported verdicts wait), and the
    evaluation queue runs at most one activity every two seconds, so a re-evaluation is in flight long enough
    to cancel."""
    with signed_running_stack(
        provider,
        tmp_path_factory.mktemp("review"),
        LOREGUARD_REVIEW_BELOW_CONFIDENCE="0",
        LOREGUARD_EVALUATION_RATE_LIMIT="0.5",
        LOREGUARD_CHUNK_SIZE="200",
    ) as stack:
        yield stack


def label(stack: Stack, doc: int) -> tuple[object, ...]:
    return query(
        stack.database, "SELECT label, model_label, reviewed_by FROM evaluations WHERE artifact_id = ?", doc
    )[0]


def wait_for(check: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def test_the_analysts_review_loop(
    provider: Provider,
    review_stack: Stack,
    browser: Browser,
    tmp_path: Path,
) -> None:
    stack = review_stack
    provider.person(ANALYST, name="Ana", groups=["analyst"])
    provider.person(MANAGER, name="Max", groups=["manager"])
    loreguard = cli(stack)
    loreguard("source", "add", "field notes", "--kind", "folder", "--location", str(stack.corpus))
    loreguard("refresh", "field notes", "--wait")
    # Readers report four verdicts the evaluator called irrelevant (from the command line, as a reader would).
    picked = [
        int(row[0])
        for row in query(
            stack.database,
            "SELECT artifact_id FROM evaluations WHERE model_label = 'irrelevant' ORDER BY artifact_id LIMIT ?",
            REPORTED,
        )
    ]
    assert len(picked) == REPORTED
    for doc in picked:
        loreguard("review", "report", str(doc), "--note", f"check {doc}")

    p: Page = signed_in(browser, stack, ANALYST)
    open_page(p, stack.url + "/review", "Review")
    p.get_by_text(re.compile(r"\d+ document\(s\) wait on this filter")).wait_for()  # doubtful ones too
    p.get_by_label("Waiting because").click()
    p.get_by_role("option", name="reported", exact=True).click()
    p.get_by_text(f"{REPORTED} document(s) wait on this filter").wait_for()
    shots = [shoot(p, "review-inbox")]

    # One at a time, oldest first: confirm the first with the keyboard (a: agree).
    p.get_by_role("button", name="Confirm irrelevant").wait_for()
    p.get_by_role("heading", name="Review", exact=True).click()  # keys act when no field has the focus
    p.keyboard.press("a")
    p.get_by_text(f"Document {picked[0]}: irrelevant (confirmed).").wait_for()
    assert label(stack, picked[0]) == ("irrelevant", "irrelevant", ANALYST)

    # Override the next with a reason.
    p.get_by_label("Reason (needed to change the evaluator's label)").fill("it is about a data breach")
    p.get_by_role("button", name=re.compile(r"^Relevant")).click()
    p.get_by_text(f"Document {picked[1]}: relevant (overridden).").wait_for()
    assert label(stack, picked[1]) == ("relevant", "irrelevant", ANALYST)

    # The rest in bulk, on a filter, the count shown first.
    p.get_by_role("tab", name="In bulk").click()
    p.get_by_text(f"{REPORTED - 2} document(s) wait on the filter above").wait_for()
    # Confirming in bulk needs the evaluator's label in the filter.
    p.get_by_label("The evaluator said").click()
    p.get_by_role("option", name="irrelevant", exact=True).click()
    p.get_by_role("button", name=f"Decide all {REPORTED - 2}").click()
    p.get_by_text(f"{REPORTED - 2} document(s) decided, 0 of them overridden.").wait_for()
    assert {label(stack, d)[2] for d in picked} == {ANALYST}
    shots.append(shoot(p, "review-bulk"))

    # A re-evaluation of a larger source: preview, start, cancel.
    large = tmp_path / "archive"
    write_corpus(large, LARGE, seed=5)
    loreguard("source", "add", "archive", "--kind", "folder", "--location", str(large))
    loreguard("refresh", "archive", "--wait")
    open_page(p, stack.url + "/review", "Review")
    p.get_by_role("tab", name="Re-evaluate").click()
    # (The batch number: the Source list is cached a minute, and the archive was added a moment ago.)
    archive_batch = int(query(stack.database, "SELECT max(id) FROM batches")[0][0])  # type: ignore[call-overload]
    batch_box = p.get_by_label("Batch (0: any)")
    batch_box.fill(str(archive_batch))
    batch_box.press("Enter")
    p.get_by_text(f"{LARGE} document(s) will be judged again by semantic").wait_for()
    p.get_by_role("button", name=f"Re-evaluate {LARGE} document(s)").click()
    started = p.get_by_text(re.compile(r"Re-evaluation (\d+) started\."))
    started.wait_for()
    run_id = int(re.search(r"\d+", started.inner_text()).group())  # type: ignore[union-attr]
    p.get_by_role("button", name="Cancel").click()
    wait_for(
        lambda: (
            query(stack.database, "SELECT status FROM reevaluations WHERE id = ?", run_id)[0][0] != "running"
        )
    )
    status, done, total = query(
        stack.database, "SELECT status, done, total FROM reevaluations WHERE id = ?", run_id
    )[0]
    assert (status, total) == ("cancelled", LARGE) and int(done) < LARGE  # type: ignore[call-overload]
    p.get_by_text(re.compile(rf"{run_id} · batch {archive_batch} · cancelled")).wait_for(timeout=20_000)
    shots.append(shoot(p, "review-reevaluation-cancelled"))
    p.context.close()

    # The manager: how often people overrode the evaluator.
    m = signed_in(browser, stack, MANAGER)
    open_page(m, stack.url + "/review", "Review")
    m.get_by_role("tab", name="Agreement").click()
    m.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    # one of the four reviews changed the label (the grid draws on a canvas: its cells are attached, not visible)
    m.get_by_text("25%").first.wait_for(state="attached")
    assert not m.get_by_role(
        "button", name="Relevant", exact=True
    ).count()  # managers read, they do not decide
    shots.append(shoot(m, "review-manager-agreement"))
    m.context.close()
    assert json.loads(loreguard("review", "agreement", "--json"))[0]["overridden"] == 1
    print(f"\nscreenshots in {OUTPUT}: {', '.join(s.name for s in shots)}")
