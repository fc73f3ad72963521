"""A bulk decision on "every batch of a source awaiting approval" decides that source's batches and no other's,
with two sources waiting (the seeded library has only one awaiting batch, which no source filter can get wrong)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from core.vocabulary import BatchStatus
from data import repository
from tests.dashboard.conftest import OpenPage, unescaped
from tests.dashboard.seed import HOSTILE, Seeded


def test_a_decision_on_one_sources_batches_leaves_the_other_sources_waiting_batch_alone(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    other_name = next(name for name in seeded.sources if name != HOSTILE)
    with dashboard_env.begin() as session:
        other = repository.create_batch(session, source_id=seeded.sources[other_name])
        other.status = BatchStatus.AWAITING_APPROVAL
        other_id = other.id
    b4 = seeded.batches["b4"]  # the hostile source's awaiting batch

    at = open_page("approvals")
    options = at.selectbox(key="filter_source").options
    at.selectbox(key="filter_source").select_index(options.index(HOSTILE)).run()
    counted = [unescaped(c.value) for c in at.caption if "batch(es) match" in unescaped(c.value)]
    assert counted == [f"1 batch(es) match: every batch of source {HOSTILE} awaiting approval."], (
        f"the filter on source {HOSTILE!r} counts {counted}: the bulk set must hold that source's batches "
        f"only, not batch {other_id} of {other_name!r}"
    )
    at.button(key="filter_approve").click().run()
    asked = [unescaped(m.value) for m in at.markdown if "Approve a retry of" in unescaped(m.value)]
    assert len(asked) == 1 and asked[0].endswith(f"({b4})?"), (
        f"the confirmation asks {asked}: a decision on every batch of {HOSTILE!r} must list batch {b4} alone"
    )
    at.button(key="decision_confirmed").click().run()
    decided = [unescaped(e.value).split(":")[0] for e in at.error]
    assert decided == [f"Batch {b4}"], f"a decision was sent for {decided}, not for batch {b4} alone"
