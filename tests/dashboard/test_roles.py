"""The role matrix, table-driven: every page and action for each role, signed in through OpenID Connect
(AppTest's st.user), and every operation refused server-side, and audited, for a role that may not do it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from cli.devserver import free_port
from core.roles import Role
from core.settings import Settings
from data import repository
from data.models import AuditEvent, Batch
from operations import Actor, Context, Forbidden, Refused, people
from operations import batches as batch_ops
from operations import sources as source_ops
from orchestration.gateway import TemporalGateway, TemporalUnavailable
from tests.dashboard.conftest import APP, ISSUER, PAGES, OpenPage, person, signed_in, unescaped
from tests.dashboard.seed import Seeded
from workers import processing

ALL_PAGES = list(PAGES)
NEEDS = "You need the"


def warnings(at: AppTest) -> str:
    return "\n".join(unescaped(w.value) for w in [*at.warning, *at.caption])


def buttons(at: AppTest) -> set[str]:
    return {b.label for b in at.button} | {b.label for b in at.get("form_submit_button")}


def downloads(at: AppTest) -> set[str]:
    return {d.proto.id.rsplit("-", 1)[-1] for d in at.get("download_button")}


# (page, role) -> what the page shows: "page" (it renders), or the permission sentence it stops with.
READERS = {"viewer", "analyst", "operator", "manager", "admin"}
PAGE_ACCESS = {
    **{
        page: READERS for page in ("overview", "sources", "batches", "library", "approvals", "workers", "sla")
    },
    "audit": {"manager", "admin"},
    "users": {"admin"},
    "document": READERS,
    "review": READERS,
}


@pytest.mark.parametrize("role", ["viewer", "analyst", "operator", "manager", "admin", ""])
@pytest.mark.parametrize("page", ALL_PAGES)
def test_every_page_for_every_role(open_page: OpenPage, seeded: Seeded, page: str, role: str) -> None:
    at = open_page(page, user=person(*([role] if role else [])))

    assert at.sidebar.markdown[0].value.startswith("Signed in as")
    if role in PAGE_ACCESS[page]:
        assert not any(NEEDS in unescaped(w.value) for w in at.warning), [w.value for w in at.warning]
    else:
        expected = "read the dashboard" if page not in ("audit", "users") else ""
        assert any(NEEDS in unescaped(w.value) and expected in unescaped(w.value) for w in at.warning)


# (page, the control, the roles that get it)
ACTIONS = [
    ("sources", "Register", {"operator", "admin"}),
    ("sources", "Preview (dry run)", {"operator", "admin"}),
    ("sources", "Refresh now", {"operator", "admin"}),
    ("sources", "Pause", {"operator", "admin"}),
    ("sources", "Delete…", {"admin"}),
    ("approvals", "Approve retry", {"operator", "admin"}),
    ("approvals", "Reject…", {"operator", "admin"}),
    ("approvals", "Approve selected", {"operator", "admin"}),
    ("review", "Relevant", {"analyst", "operator", "admin"}),
    ("review", "Irrelevant", {"analyst", "operator", "admin"}),
]


@pytest.mark.parametrize("role", ["viewer", "analyst", "operator", "manager", "admin"])
@pytest.mark.parametrize(("page", "control", "roles"), ACTIONS, ids=[f"{p}:{c}" for p, c, _ in ACTIONS])
def test_action_controls_follow_the_role(
    open_page: OpenPage, seeded: Seeded, page: str, control: str, roles: set[str], role: str
) -> None:
    at = open_page(page, user=person(role))

    assert (control in buttons(at)) == (role in roles), sorted(buttons(at))
    if role not in roles and control != "Delete…":
        assert NEEDS in warnings(at)  # says so plainly, with the roles that would do


@pytest.mark.parametrize(
    ("page", "key", "roles"),
    [("library", "library_csv", {"analyst", "operator", "admin"}), ("sla", "sla_csv", {"manager", "admin"})],
)
@pytest.mark.parametrize("role", ["viewer", "analyst", "operator", "manager", "admin"])
def test_exports_follow_the_role(
    open_page: OpenPage, seeded: Seeded, page: str, key: str, roles: set[str], role: str
) -> None:
    at = open_page(page, user=person(role))

    assert (key in downloads(at)) == (role in roles)


def test_without_sign_in_configured_the_dashboard_is_the_labelled_local_admin(
    dashboard_env: sessionmaker[Session], seeded: Seeded
) -> None:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()

    assert not at.exception
    assert "(local admin)" in unescaped(at.sidebar.markdown[0].value)
    assert "serves only this machine" in at.sidebar.caption[0].value


def test_nobody_signed_in_sees_only_the_sign_in_screen_and_sign_out_ends_the_session(
    dashboard_env: sessionmaker[Session], seeded: Seeded
) -> None:
    at = signed_in(AppTest.from_file(str(APP), default_timeout=30), None)
    at.run()
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.get("dataframe")  # nothing of the library shows before sign-in

    at = signed_in(AppTest.from_file(str(APP), default_timeout=30), person("operator"))
    at.run()
    assert "Roles: operator" in at.sidebar.caption[0].value
    at.sidebar.button(key="sign_out").click().run()
    assert at.user == {"is_logged_in": False}
    at.run()
    assert [b.label for b in at.button] == ["Sign in"]


# --- the operations themselves, called directly (as a tampered page or a script could) -------------------


@pytest.fixture
def ctx(dashboard_env: sessionmaker[Session], seeded: Seeded, tmp_path: Path) -> Context:
    settings = Settings(admins=["first.admin@example.org"], role_mapping={"ops-team": "operator"})
    gateway = TemporalGateway(f"127.0.0.1:{free_port()}", "default", connect_timeout=0.2)  # nobody there
    return Context(settings, dashboard_env, gateway, processing)


def refused_events(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with sessions() as session:
        rows = session.execute(
            select(AuditEvent.actor, AuditEvent.action).where(AuditEvent.action.like("refused:%"))
        ).all()
    return [(actor, action) for actor, action in rows]


def operations_for(ctx: Context, seeded: Seeded, folder: Path) -> dict[str, Any]:
    alpha = seeded.sources["alpha"]
    with ctx.sessions() as session:
        waiting = session.scalars(select(Batch.id).where(Batch.status == "awaiting_approval")).first()
    draft = source_ops.check_source(ctx, name="new", kind="folder", location=str(folder), interval=600)
    return {
        "add_source": lambda a: source_ops.register_source(a, ctx, draft),
        "preview_source": lambda a: source_ops.preview(a, ctx, draft),
        "pause_source": lambda a: source_ops.pause_source(a, ctx, alpha),
        "set_interval": lambda a: source_ops.set_source_interval(a, ctx, alpha, 900),
        "refresh": lambda a: batch_ops.refresh_source(a, ctx, alpha),
        "approve": lambda a: batch_ops.approve_retry(a, ctx, waiting),
        "reject": lambda a: batch_ops.reject(a, ctx, waiting, reason="no"),
        "delete_source": lambda a: source_ops.delete_source(a, ctx, seeded.sources["alpha"]),
        "grant_role": lambda a: people.grant_role(a, ctx, "someone@example.org", "viewer"),
    }


ALLOWED = {
    "add_source": {Role.OPERATOR, Role.ADMIN},
    "preview_source": {Role.OPERATOR, Role.ADMIN},
    "pause_source": {Role.OPERATOR, Role.ADMIN},
    "set_interval": {Role.OPERATOR, Role.ADMIN},
    "refresh": {Role.OPERATOR, Role.ADMIN},
    "approve": {Role.OPERATOR, Role.ADMIN},
    "reject": {Role.OPERATOR, Role.ADMIN},
    "delete_source": {Role.ADMIN},
    "grant_role": {Role.ADMIN},
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(ALLOWED))
def test_every_operation_checks_the_role_server_side(
    ctx: Context, seeded: Seeded, tmp_path: Path, action: str, role: Role
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "note.txt").write_text("A short note about access reviews for vendors.")
    actor = Actor(f"{role.value}@example.org", frozenset({role}))
    run = operations_for(ctx, seeded, folder)[action]

    if role in ALLOWED[action]:
        try:
            run(actor)
        except Forbidden:
            pytest.fail(f"{role} was refused {action}")
        except (Refused, TemporalUnavailable):
            pass  # allowed; it then failed for another reason (no Temporal here, no workflow for the batch)
        assert refused_events(ctx.sessions) == []
    else:
        with ctx.sessions() as session:
            before = session.scalar(select(Batch.id).order_by(Batch.id.desc()))
        with pytest.raises(Forbidden, match=r"You need the .*role to .* \(you have: " + role.value + r"\)"):
            run(actor)
        assert refused_events(ctx.sessions) == [(actor.name, f"refused:{action}")]
        with ctx.sessions() as session:  # nothing changed: no batch started, the source still there
            assert session.scalar(select(Batch.id).order_by(Batch.id.desc())) == before
            assert repository.source_name_taken(session, name="alpha")


def verified(email: str, **claims: Any) -> dict[str, Any]:
    return {"iss": ISSUER, "sub": email.split("@")[0], "email": email, "email_verified": True, **claims}


def test_roles_come_from_claims_mapping_grants_and_the_admins_setting(ctx: Context) -> None:
    assert people.identify(ctx, verified("a@example.org", groups=["ops-team"])).roles == {Role.OPERATOR}
    assert people.identify(ctx, verified("b@example.org", groups="Analyst")).roles == {Role.ANALYST}
    assert people.identify(ctx, verified("c@example.org", groups=["strangers"])).roles == set()
    assert people.identify(ctx, verified("First.Admin@example.org")).roles == {Role.ADMIN}

    admin = people.identify(ctx, verified("first.admin@example.org"))
    assert (
        people.grant_role(admin, ctx, "C@example.org", "manager")
        == "c@example.org now holds the manager role"
    )
    assert people.identify(ctx, verified("c@example.org")).roles == {Role.MANAGER}  # at once, next run
    with pytest.raises(Refused, match="Role: choose one of"):
        people.grant_role(admin, ctx, "c@example.org", "superuser")
    with pytest.raises(Refused, match="cannot take the admin role from yourself"):
        people.revoke_role(admin, ctx, "first.admin@example.org", "admin")
    people.revoke_role(admin, ctx, "c@example.org", "manager")
    assert people.identify(ctx, verified("c@example.org")).roles == set()
    with ctx.sessions() as session:
        events = session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.target, AuditEvent.reason).where(
                AuditEvent.action.in_(("grant_role", "revoke_role"))
            )
        ).all()
    assert [tuple(e) for e in events] == [
        ("first.admin@example.org", "grant_role", "person:c@example.org", "manager"),
        ("first.admin@example.org", "revoke_role", "person:c@example.org", "manager"),
    ]


@pytest.mark.parametrize(
    "claims",
    [
        {"email": "first.admin@example.org", "email_verified": False, "sub": "mallory"},
        {"email": "first.admin@example.org", "sub": "mallory"},  # the provider says nothing: not verified
        {"email": "first.admin@example.org", "email_verified": "false", "sub": "mallory"},
        {"sub": "first.admin@example.org"},  # a subject that looks like the admin's address
        {"email": "c@example.org", "email_verified": False, "sub": "c@example.org"},
    ],
    ids=["unverified", "unsaid", "unverified-string", "sub-as-email", "both-unverified"],
)
def test_an_unverified_email_or_a_bare_subject_is_never_an_admin_or_a_grantee(
    ctx: Context, claims: dict[str, Any]
) -> None:
    admin = people.identify(ctx, verified("first.admin@example.org"))
    people.grant_role(admin, ctx, "c@example.org", "operator")

    who = people.identify(ctx, {"iss": ISSUER, **claims})

    assert who.roles == set()
    assert who.name == f"{ISSUER}|{claims['sub']}"  # named by issuer and subject, as the audit log shows


def test_a_person_without_a_verified_email_is_granted_by_issuer_and_subject(ctx: Context) -> None:
    admin = people.identify(ctx, verified("first.admin@example.org"))
    entra = {"iss": "https://Login.Example.org/tenant/", "sub": "AbC-123", "name": "Kim"}
    assert people.identify(ctx, entra).name == "https://login.example.org/tenant|AbC-123"

    message = people.grant_role(admin, ctx, " https://login.example.org/tenant/|AbC-123 ", "analyst")

    assert message == "https://login.example.org/tenant|AbC-123 now holds the analyst role"
    assert people.identify(ctx, entra).roles == {Role.ANALYST}
    other_issuer = {"iss": "https://elsewhere.example.org", "sub": "AbC-123"}
    assert people.identify(ctx, other_issuer).roles == set()  # same subject, another provider
    assert people.identify(ctx, {**entra, "sub": "abc-123"}).roles == set()  # subjects are case-sensitive
    for ambiguous in (
        "AbC-123",
        "login.example.org|AbC-123",
        "https://login.example.org|",
        "a b@example.org",
    ):
        with pytest.raises(Refused, match=r"verified e-mail address .* issuer and subject joined by"):
            people.grant_role(admin, ctx, ambiguous, "viewer")
    with pytest.raises(Refused, match="no verified e-mail, and no issuer and subject"):
        people.identify(ctx, {"email": "x@example.org", "email_verified": False})


def test_an_admins_entry_that_is_a_bare_subject_is_refused_at_start() -> None:
    assert Settings(admins=["Ada@Example.org", "https://login.example.org/|248289761001"]).admins == [
        "ada@example.org",
        "https://login.example.org|248289761001",
    ]
    with pytest.raises(ValidationError, match="LOREGUARD_ADMINS: '248289761001' is not a verified e-mail"):
        Settings(admins=["248289761001"])


def test_the_dashboard_serves_no_page_with_a_bare_subject_in_the_admins_setting(
    dashboard_env: sessionmaker[Session], seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOREGUARD_ADMINS", '["248289761001"]')  # whose subject? any provider may issue it
    at = signed_in(AppTest.from_file(str(APP), default_timeout=30), person("viewer"))
    at.run()

    (error,) = [unescaped(e.value) for e in at.error]
    assert error.startswith("This dashboard refuses to serve pages: invalid configuration: LOREGUARD_ADMINS:")
    assert "prefix it with its issuer and '|'" in error
    assert not at.sidebar.markdown and not at.get("dataframe")
