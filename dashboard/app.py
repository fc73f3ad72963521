"""Dashboard entrypoint: a router only. Pages live in ../pages and are registered here.

To add a page (Approvals, Audit, SLA, Workers...), add its st.Page to PAGES.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="LoreGuard Ops", page_icon=":material/shield:", layout="wide")

PAGES = [
    st.Page("../pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("../pages/sources.py", title="Sources", icon=":material/source:"),
    st.Page("../pages/batches.py", title="Batches", icon=":material/stacks:"),
    st.Page("../pages/library.py", title="Library", icon=":material/library_books:"),
    st.Page("../pages/approvals.py", title="Approvals", icon=":material/approval:"),
    st.Page("../pages/audit.py", title="Audit", icon=":material/history:"),
    st.Page("../pages/workers.py", title="Workers", icon=":material/memory:"),
    st.Page("../pages/sla.py", title="SLA", icon=":material/timer:"),
]

st.navigation(PAGES).run()
