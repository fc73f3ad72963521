"""Users: who holds which granted role, and granting or revoking one (admins only)."""

from __future__ import annotations

import streamlit as st

from core.roles import ROLES, Permission, describe
from dashboard import people
from dashboard.auth import actor, require
from dashboard.components import database_required, literal, table
from dashboard.db import operations_context, reading, settings
from operations import Refused
from operations.people import grant_role, revoke_role

NOTICE = "users_notice"

st.title("Users")
require(Permission.ASSIGN_ROLES)

notice = st.session_state.pop(NOTICE, None)
if notice:
    st.success(literal(notice), icon=":material/check_circle:")

s = settings()
st.caption(
    literal(
        f"A person's roles are those their identity provider gives in the '{s.roles_claim}' claim, those granted "
        "here, and admin for the people LOREGUARD_ADMINS names. A person is their e-mail only when their provider "
        "says it is verified; anyone else is their provider's issuer and subject (issuer|subject, as the sidebar "
        "and the audit log show it). Grants apply on the person's next page view. "
        f"Roles: {describe(ROLES)}."
    )
)

with database_required(), reading() as session:
    grants = people.grants_frame(session)
if grants.empty:
    st.info("No roles granted here yet.", icon=":material/group:")
else:
    table(grants, key="grants_table")

st.subheader("Grant or revoke a role")
with st.form("grant_role"):
    person = st.text_input(
        "Person (verified e-mail, or issuer|subject)",
        key="grant_person",
        max_chars=512,
        placeholder="ada@example.org or https://login.example.org|248289761001",
    )
    role = st.selectbox("Role", [r.value for r in ROLES], key="grant_role_choice")
    grant_col, revoke_col = st.columns(2)
    wants_grant = grant_col.form_submit_button("Grant", type="primary", icon=":material/person_add:")
    wants_revoke = revoke_col.form_submit_button("Revoke", icon=":material/person_remove:")

if wants_grant or wants_revoke:
    act = grant_role if wants_grant else revoke_role
    try:
        with database_required():
            message = act(actor(), operations_context(), person, role)
    except Refused as exc:
        st.error(literal(exc.message), icon=":material/block:")
    else:
        st.session_state[NOTICE] = message + "."  # it starts with an email: no capital
        st.rerun()
