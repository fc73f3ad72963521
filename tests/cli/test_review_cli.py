"""`loreguard review ...` in-process through the CLI's own entry function: what a person reads and the exit
statuses scripts rely on (0 done, 2 refused input, 3 not allowed)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cli.main import run
from data.models import AuditEvent, Evaluation
from tests.support.library import Verdict, store_documents


@pytest.fixture
def env(in_process_env: sessionmaker[Session]) -> sessionmaker[Session]:
    return in_process_env


def labels(sessions: sessionmaker[Session]) -> dict[int, tuple[str, str | None]]:
    with sessions() as session:
        return {
            e.artifact_id: (e.label, e.reviewed_by) for e in session.execute(select(Evaluation)).scalars()
        }


def test_list_decide_and_report(env: sessionmaker[Session], capsys: pytest.CaptureFixture[str]) -> None:
    doubt, sure = store_documents(
        env, "feeds", [Verdict("Clinic hit by ransomware", "review"), Verdict("Pie", "irrelevant")]
    )
    assert run(["review", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["waiting"] == 1 and listed["documents"][0]["document"] == doubt

    assert run(["review", "decide", str(doubt), "irrelevant"]) == 2  # an override needs a reason
    assert "needs a reason" in capsys.readouterr().err
    assert run(["review", "decide", str(doubt), "relevant", "--reason", "ransomware", "--actor", "ana"]) == 0
    assert "relevant (overridden)" in capsys.readouterr().out
    label, by = labels(env)[doubt]
    assert label == "relevant" and by is not None and by.endswith(" as ana")

    assert run(["review", "report", str(sure), "--note", "this is about baking"]) == 0
    assert run(["review", "list", "--why", "reported"]) == 0
    assert "1 document(s) waiting for review (reason reported)" in capsys.readouterr().out
    assert run(["review", "list", "--why", "reported", "--json"]) == 0
    assert [d["document"] for d in json.loads(capsys.readouterr().out)["documents"]] == [sure]


def test_bulk_counts_first_and_decides_only_with_the_count(
    env: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    docs = store_documents(env, "feeds", [Verdict(f"n{i}", "irrelevant", 0.55) for i in range(3)])
    assert run(["review", "bulk", "--evaluator-said", "irrelevant"]) == 2
    assert "3 document(s) wait on this filter" in capsys.readouterr().err
    assert run(["review", "bulk", "--evaluator-said", "irrelevant", "--expect", "2"]) == 2
    assert "3 documents wait on this filter now, not 2" in capsys.readouterr().err
    assert all(by is None for _, by in labels(env).values())
    assert (
        run(["review", "bulk", "--evaluator-said", "irrelevant", "--source", "feeds", "--expect", "3"]) == 0
    )
    assert "3 document(s) decided" in capsys.readouterr().out
    assert {labels(env)[d][0] for d in docs} == {"irrelevant"}
    assert run(["review", "agreement", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["source_name"], row["reviewed"], row["overridden"]) == ("feeds", 3, 0)


def test_roles_of_the_cli_are_checked(
    env: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (doc,) = store_documents(env, "feeds", [Verdict("x", "review")])
    monkeypatch.setenv("LOREGUARD_CLI_ROLES", '["viewer"]')
    assert run(["review", "decide", str(doc), "relevant", "--reason", "r"]) == 3
    assert "analyst" in capsys.readouterr().err
    with env() as session:
        assert [a.action for a in session.execute(select(AuditEvent)).scalars()] == ["refused:review"]


def test_reevaluate_previews_first_and_refuses_what_is_not_there(
    env: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    store_documents(env, "feeds", [Verdict(f"n{i}", "irrelevant") for i in range(3)])
    store_documents(env, "pages", [Verdict("p", "relevant")])
    assert run(["reevaluate", "start", "--source", "feeds"]) == 2
    err = capsys.readouterr().err
    assert "3 document(s) will be judged again by semantic" in err and "--expect 3" in err
    assert run(["reevaluate", "start", "--label", "relevant", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 1
    assert run(["reevaluate", "cancel", "7"]) == 2
    assert "there is no re-evaluation 7" in capsys.readouterr().err
    assert run(["reevaluate", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
