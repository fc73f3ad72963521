"""Who is using the dashboard: Streamlit's OpenID Connect sign-in, or a labelled local admin without it.

With an [auth] section in the Streamlit secrets, every session signs in through the identity provider and acts
as the person it names, with the roles operations.people.identify resolves on every run (claims, grants,
LOREGUARD_ADMINS). Without one, the dashboard serves only this machine (loopback) and acts as its local admin.
The router (dashboard/app.py) calls `gate()` before any page runs; pages ask `actor()` and `allowed()`.
"""

from __future__ import annotations

import getpass
import os

import streamlit as st

from core.roles import Permission, Role, describe, needs
from core.signin import loopback
from dashboard.components import database_required, literal
from dashboard.db import operations_context
from operations import Actor, Refused
from operations.people import identify

ACTOR = "loreguard_actor"  # the session's Actor, set by gate() on every run


def sign_in_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all: Streamlit raises its own not-found error
        return False


def local_admin() -> Actor:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid-{os.getuid()}"
    return Actor(f"{user} (local admin)", frozenset({Role.ADMIN}))


def gate() -> Actor:
    """The person of this session, checked on every run; stops the run with a sign-in screen or a refusal."""
    if not sign_in_configured():
        address = st.get_option("server.address") or ""
        if address and not loopback(address):
            st.error(
                f"This dashboard listens on {address} without sign-in. Configure OpenID Connect ([auth] in "
                "the Streamlit secrets) or bind it to 127.0.0.1.",
                icon=":material/lock:",
            )
            st.stop()
        person = local_admin()
    else:
        person = _signed_in()
    st.session_state[ACTOR] = person
    _sidebar(person)
    return person


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
