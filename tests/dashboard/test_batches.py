"""Batches: the filtered list, and one batch's detail with progress, stage timings and paged documents."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.vocabulary import ArtifactStatus, BatchStatus
from data import repository
from data.models import Artifact, utcnow
from tests.dashboard.conftest import ADMIN_USER, OpenPage, plotly_figures, unescaped, values
from tests.dashboard.seed import HOSTILE, Seeded


def test_the_list_is_newest_first_and_filters_by_status_source_and_time(
    seeded: Seeded, open_page: OpenPage
) -> None:
    at = open_page("batches")
    rows = at.dataframe[0].value
    assert list(rows["batch"]) == sorted(seeded.batches.values(), reverse=True)
    assert at.caption[0].value.startswith("5 batch(es)")

    at.selectbox(key="status").select("completed").run()
    assert sorted(at.dataframe[0].value["batch"]) == sorted(seeded.batches[k] for k in ("b1", "b2", "b3"))

    at.selectbox(key="source").select("alpha").run()
    assert sorted(at.dataframe[0].value["batch"]) == sorted(seeded.batches[k] for k in ("b1", "b3"))

    at.selectbox(key="batches_window").select("last 24 hours").run()
    assert list(at.dataframe[0].value["batch"]) == [seeded.batches["b3"]]

    at.selectbox(key="status").select("failed").run()
    assert at.dataframe[0].value.empty
    assert at.caption[0].value.startswith("0 batch(es)")


def test_status_comes_from_the_link_on_the_overview(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("batches", status="awaiting_approval")
    rows = at.dataframe[0].value
    assert list(rows["batch"]) == [seeded.batches["b4"]]
    assert rows["error"][0] == f"TooManyFailures: 2 of 3 documents failed: {HOSTILE}"


def test_batch_detail_from_the_query_parameter(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    b5 = seeded.batches["b5"]  # running: 60 stored, 10 failed, 50 waiting
    at = open_page("batches", batch=str(b5))

    assert at.subheader[0].value == f"Batch {b5}"
    progress = at.get("progress")[0].proto
    assert progress.value == 58  # 70 of 120 done
    assert progress.text.startswith("70 of 120 documents done · running")
    shown = {m.label: m.value for m in at.metric}
    assert shown == {
        "Stored": "60",
        "Failed": "10",
        "Unchanged": "0",
        "Skipped": "0",
        "Documents": "120",
        "Attempt": "1",
    }

    # Mean ms per document from the seed's timings: ingest 1 + seq/10 over all 120 documents (seq 0-119);
    # normalize 10 + seq/10 and extract 4 + seq % 7 over the 70 processed (0-69); clarify 1 + 0.5 * (seq % 4),
    # evaluate 20 + seq % 3 and store 3 (seq < 30) or 5 over the 60 stored (0-59).
    chart = plotly_figures(at)["stage_timings"]["data"][0]
    assert chart["x"] == ["ingest", "normalize", "extract", "clarify", "evaluate", "store"]
    assert values(chart["y"]) == pytest.approx([6.95, 13.45, 7.0, 1.75, 21.0, 4.0], abs=1e-9)

    link = at.get("link_button")[0].proto
    assert link.url == "http://127.0.0.1:18233/namespaces/default/workflows/batch-b5-test"

    docs = at.dataframe[-1].value
    assert len(docs) == 50 and list(docs["seq"]) == list(range(50))  # a page, not all 120 rows
    pages = [p for p in at.pagination if p.key == "artifacts_page"]
    pages[0].select(3).run()
    docs = at.dataframe[-1].value
    assert list(docs["seq"]) == list(range(100, 120))

    at.toggle(key="only_failed").set_value(True).run()
    failed = at.dataframe[-1].value
    assert list(failed["seq"]) == list(range(60, 70))
    assert set(failed["failed stage"]) == {"normalize"}
    assert failed["error"][0] == "undecodable bytes in document 60"


def test_a_running_batch_says_when_live_progress_is_unavailable(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("batches", batch=str(seeded.batches["b5"]))
    warnings = [unescaped(w.value) for w in at.warning]
    assert any(
        w.startswith("Live progress from the workflow unavailable. Temporal unavailable at") for w in warnings
    )
    assert at.get("progress")  # the library's own progress still shows


def test_a_failed_batch_shows_its_error_as_text(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("batches", batch=str(seeded.batches["b4"]))
    assert [c.value for c in at.code] == [f"TooManyFailures: 2 of 3 documents failed: {HOSTILE}"]
    assert any("Waiting for an operator's decision" in unescaped(m.value) for m in at.markdown)
    # an admin may decide right here
    assert {b.key for b in at.button} >= {"batch_approve", "batch_reject"}
    assert not at.get("progress")[0].proto.text.endswith("running")


def test_an_unknown_batch_is_said_so(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("batches", batch="999")
    assert [w.value for w in at.warning] == ["There is no batch 999."]


def test_a_batch_shows_what_it_found_unchanged_and_what_it_skipped_over_the_limit(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    with dashboard_env.begin() as session:
        batch = repository.create_batch(session, source_id=seeded.sources["alpha"])
        repository.insert_artifacts(
            session,
            rows=[
                {"batch_id": batch.id, "source_id": batch.source_id, "seq": seq, "uri": f"file:///d/{seq}.txt",
                 "content_type": "text/plain", "status": ArtifactStatus.UNCHANGED if seq < 3 else ArtifactStatus.STORED}
                for seq in range(5)
            ],
        )  # fmt: skip
        repository.record_ingested(session, batch_id=batch.id, skipped=1234)
        repository.finish_batch(session, batch_id=batch.id, status=BatchStatus.COMPLETED)
        batch_id = batch.id

    at = open_page("batches", batch=str(batch_id))

    shown = {m.label: m.value for m in at.metric}
    assert (shown["Stored"], shown["Unchanged"], shown["Skipped"], shown["Documents"]) == (
        "2",
        "3",
        "1,234",
        "5",
    )
    assert at.get("progress")[0].proto.text.startswith("5 of 5 documents done")
    captions = [unescaped(c.value) for c in at.caption]
    assert (
        "1,234 more document(s) of the source were not gathered: over the per-batch limit "
        "(LOREGUARD_MAX_DOCUMENTS_PER_BATCH)." in captions
    )
    listed = at.dataframe[0].value
    row = listed[listed["batch"] == batch_id].iloc[0]
    assert (row["unchanged"], row["skipped"]) == (3, 1234)


def test_the_list_counts_a_running_batch_live_and_names_the_ingesting_state(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    with dashboard_env.begin() as session:
        ingesting = repository.create_batch(session, source_id=seeded.sources["alpha"])
        ingesting.status, ingesting.started_at = "running", utcnow()
        session.flush()
        ingesting_id = ingesting.id
        session.add_all(
            Artifact(
                batch_id=ingesting_id,
                source_id=ingesting.source_id,
                seq=i,
                uri=f"file:///x/{i}",
                content_type="text/plain",
            )
            for i in range(7)
        )
    at = open_page("batches")
    rows = at.dataframe[0].value.set_index("batch")
    b5 = seeded.batches["b5"]
    assert (rows.loc[b5, "status"], rows.loc[b5, "progress"]) == ("running", "70 of 120 (58%)")
    assert (rows.loc[b5, "stored"], rows.loc[b5, "failed"]) == (60, 10)  # live, not the row's zeros
    assert (rows.loc[ingesting_id, "status"], rows.loc[ingesting_id, "progress"]) == (
        "ingesting",
        "7 gathered so far",
    )
    assert rows.loc[seeded.batches["b4"], "status"] == "awaiting approval"
    assert rows.loc[seeded.batches["b1"], "took"] == "5 min"

    detail = open_page("batches", batch=str(b5))
    pace = [c.value for c in detail.caption if "docs/s" in c.value]
    assert pace and "left (ETA" in pace[0]
    live = open_page("batches", batch=str(ingesting_id))
    assert live.get("progress")[0].proto.text.startswith("ingesting · 7 documents gathered so far")


def test_a_failed_batch_is_decided_on_its_own_page_and_lists_every_decision(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    b4 = seeded.batches["b4"]
    with dashboard_env.begin() as session:
        for attempt, (decision, who) in enumerate((("approved", "ana"), ("rejected", "ben")), start=1):
            repository.record_decision(
                session, batch_id=b4, decision=decision, actor=who, reason=f"try {attempt}", attempt=attempt
            )
    at = open_page("batches", batch=str(b4))
    history = next(d.value for d in at.dataframe if "decision" in d.value.columns)
    assert list(history["decision"]) == ["rejected", "approved"]  # both, newest first
    assert list(history["by"]) == ["ben", "ana"]
    at.button(key="batch_reject").click().run()
    assert at.button(key="decision_confirmed").label == "Reject"
    at.text_area(key="decision_reason").input("source retired").run()
    at.button(key="decision_confirmed").click().run()
    # no Temporal here: the decision is refused with why, and nothing changes
    assert any(f"Batch {b4}: not sent. Temporal unavailable" in unescaped(e.value) for e in at.error)

    viewer = {**ADMIN_USER, "sub": "v", "email": "v@example.org", "groups": ["viewer"]}
    at = open_page("batches", user=viewer, batch=str(b4))
    assert not any(b.key in ("batch_approve", "batch_reject") for b in at.button)
    assert any("You need the operator or admin role" in unescaped(c.value) for c in at.caption)


def test_operators_cancel_the_running_batches_the_filter_matches_and_viewers_cannot(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    at = open_page("batches")
    # b4 (awaiting approval) and b5 (running) are in flight
    assert any("**2 running batch(es) match this filter.**" in unescaped(m.value) for m in at.markdown)
    at.button(key="cancel_all").click().run()
    assert at.button(key="cancel_confirmed").label == "Cancel 2 batches"
    at.button(key="cancel_confirmed").click().run()
    assert [e.value for e in at.error] == ["A cancellation needs a reason."]
    at.text_area(key="cancel_reason").input("runaway refresh").run()
    at.button(key="cancel_confirmed").click().run()
    # no Temporal here: each batch says it was not sent, and nothing changes
    refused = [unescaped(e.value) for e in at.error]
    assert [m.split(". ")[0] for m in refused] == [
        f"Batch {seeded.batches['b4']}: not sent",
        f"Batch {seeded.batches['b5']}: not sent",
    ]
    with dashboard_env() as session:
        assert repository.get_batch(session, batch_id=seeded.batches["b5"]).decision is None

    viewer = {**ADMIN_USER, "sub": "v", "email": "v@example.org", "groups": ["viewer"]}
    at = open_page("batches", user=viewer)
    assert not any("running batch(es) match" in m.value for m in at.markdown)
    assert not any(b.key in ("cancel_all", "cancel_selected") for b in at.button)
    at = open_page("batches", user=viewer, batch=str(seeded.batches["b5"]))
    assert not any(b.key == "batch_cancel" for b in at.button)


def test_a_cancelled_batch_says_who_stopped_it_why_and_what_it_kept(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    b5 = seeded.batches["b5"]  # running: 60 stored, 10 failed, 50 waiting
    with dashboard_env.begin() as session:
        repository.record_cancel(session, batch_id=b5, actor="olga", reason="wrong share")
    at = open_page("batches")
    rows = at.dataframe[0].value.set_index("batch")
    assert (rows.loc[b5, "status"], rows.loc[b5, "error"]) == ("cancelling", "cancelled by olga: wrong share")

    with dashboard_env.begin() as session:
        repository.close_cancelled_batch(
            session, batch_id=b5, how="cancelled (by olga: wrong share)", target_hours=4, zone="UTC"
        )
    at = open_page("batches", status="cancelled")
    rows = at.dataframe[0].value
    assert list(rows["batch"]) == [b5]
    assert rows["error"][0] == (
        "cancelled by olga: wrong share (60 stored document(s) kept; 50 not processed)"
    )
    at = open_page("batches", batch=str(b5))
    info = [unescaped(i.value) for i in at.info]
    assert len(info) == 1 and info[0].startswith("Cancelled by olga (")
    assert info[0].endswith("): wrong share. 60 stored document(s) kept; 50 not processed.")
    assert not any(b.key == "batch_cancel" for b in at.button)


def test_a_batchs_documents_and_its_source_are_links(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    b5 = seeded.batches["b5"]
    at = open_page("batches", batch=str(b5))
    docs = at.dataframe[-1].value
    with dashboard_env() as session:
        first = session.scalars(select(Artifact.id).where(Artifact.batch_id == b5, Artifact.seq == 0)).one()
    assert docs["document"][0] == f"document?doc={first}"  # opens the document page, which links back here
    (source_link,) = [
        link.proto for link in at.get("page_link") if link.proto.label.startswith("All batches of")
    ]
    assert source_link.label == "All batches of beta" and source_link.query_string == "source=beta"

    listed = open_page("batches", source="beta").dataframe[0].value  # the filter in the address
    assert set(listed["source"]) == {"beta"} and b5 in set(listed["batch"])
