"""Dashboard entrypoint: a router only. It finds out who is here, then runs the page; pages live in ../pages.

To add a page (Approvals, Audit, SLA, Workers...), add its st.Page to PAGES.
"""

from __future__ import annotations

import streamlit as st

from dashboard.auth import gate

st.set_page_config(page_title="LoreGuard Ops", page_icon=":material/shield:", layout="wide")
gate()  # who is here (sign-in, or the local admin on loopback); every page then checks what they may do

PAGES = [
    st.Page("../pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("../pages/sources.py", title="Sources", icon=":material/source:"),
    st.Page("../pages/batches.py", title="Batches", icon=":material/stacks:"),
    st.Page("../pages/library.py", title="Library", icon=":material/library_books:"),
    st.Page("../pages/approvals.py", title="Approvals", icon=":material/approval:"),
    st.Page("../pages/audit.py", title="Audit", icon=":material/history:"),
    st.Page("../pages/workers.py", title="Workers", icon=":material/memory:"),
    st.Page("../pages/sla.py", title="SLA", icon=":material/timer:"),
    st.Page("../pages/users.py", title="Users", icon=":material/group:"),
]

st.navigation(PAGES).run()
