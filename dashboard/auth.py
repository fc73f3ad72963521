"""Who is using the dashboard: Streamlit's OpenID Connect sign-in, or a labelled local admin without it.

With an [auth] section in the Streamlit secrets, every session signs in through the identity provider and acts
as the person it names, with the roles operations.people.identify resolves on every run (claims, grants,
LOREGUARD_ADMINS). Without one, the dashboard serves only this machine (loopback) and acts as its local admin.
The router (dashboard/app.py) calls `gate()` before any page runs; pages ask `actor()` and `allowed()`.
"""

from __future__ import annotations

import logging

import streamlit as st
from pydantic import ValidationError

from core.roles import Permission, Role, describe, needs
from core.signin import auth_problems
from dashboard.components import database_required, literal
from dashboard.db import operations_context, settings
from operations import Actor, Refused
from operations.context import os_account
from operations.people import identify

log = logging.getLogger(__name__)
ACTOR = "loreguard_actor"  # the session's Actor, set by gate() on every run


def sign_in_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all: Streamlit raises its own not-found error
        return False


def local_admin() -> Actor:
    return Actor(f"{os_account()} (local admin)", frozenset({Role.ADMIN}))


def gate() -> Actor:
    """The person of this session, checked on every run; stops the run with a sign-in screen or a refusal."""
    _refuse_unsafe_start()
    person = _signed_in() if sign_in_configured() else local_admin()
    st.session_state[ACTOR] = person
    _sidebar(person)
    return person


def _refuse_unsafe_start() -> None:
    """The start-up rule (core/signin.py), checked by the app itself before any page runs, however it was started
    (`loreguard dashboard`, `streamlit run dashboard/app.py --server.address ...`, a container): without sign-in
    only loopback, and outside development a real cookie secret. What Streamlit listens on is its own
    server.address option; unset or empty means every interface."""
    try:
        config = settings()
    except ValidationError as exc:  # e.g. a bare subject in LOREGUARD_ADMINS: say which, do not guess
        error = exc.errors()[0]
        _refuse([f"invalid configuration: {error['msg'].removeprefix('Value error, ')}"])
        return
    address = st.get_option("server.address") or ""
    auth = st.secrets["auth"].to_dict() if sign_in_configured() else None
    problems = auth_problems(auth, address=address, environment=config.environment)
    if problems:
        _refuse(problems)


def _refuse(problems: list[str]) -> None:
    _log_refusal(tuple(problems))
    st.error(
        literal("This dashboard refuses to serve pages: " + "; ".join(problems) + "."), icon=":material/lock:"
    )
    st.stop()


@st.cache_resource(show_spinner=False)
def _log_refusal(problems: tuple[str, ...]) -> None:
    """Once per process and reason, in the server's log (where whoever started it looks)."""
    log.error("the dashboard refuses to serve pages: %s", "; ".join(problems))


def _signed_in() -> Actor:
    if not st.user.get("is_logged_in"):
        st.title("LoreGuard Ops")
        st.write("Sign in with your organisation's account to use the operations dashboard.")
        if st.button("Sign in", type="primary", icon=":material/login:"):
            st.login()
        st.stop()
    try:
        with database_required():
            return identify(operations_context(), st.user.to_dict())
    except Refused as exc:
        st.error(literal(exc.message), icon=":material/lock:")
        st.stop()
        raise  # unreachable: st.stop() ends the run


def _sidebar(person: Actor) -> None:
    with st.sidebar:
        if sign_in_configured():
            st.markdown(f"Signed in as **{literal(person.name)}**")
            st.caption(f"Roles: {describe(person.roles)}")
            if st.button("Sign out", icon=":material/logout:", key="sign_out"):
                st.session_state.pop(ACTOR, None)
                st.logout()
                st.stop()
        else:
            st.markdown(f"**{literal(person.name)}**")
            st.caption(
                "No sign-in is configured: this dashboard serves only this machine, as its local admin."
            )


def actor() -> Actor:
    """The person acting in this run (set by the router's gate)."""
    person = st.session_state.get(ACTOR)
    return person if isinstance(person, Actor) else gate()


def allowed(permission: Permission) -> bool:
    return actor().may(permission)


def needs_sentence(permission: Permission) -> str:
    """'You need the operator or admin role to ... (you have: viewer).' for this session's person."""
    text = needs(permission, actor().roles)
    return text[0].upper() + text[1:] + "."


def require(permission: Permission) -> None:
    """Stop the page with a plain message when the person may not use it."""
    if not allowed(permission):
        st.warning(needs_sentence(permission), icon=":material/lock:")
        st.stop()
