"""Dashboard entrypoint: a router only. It finds out who is here, then runs the page; pages live in ../pages.

To add a page, add its st.Page to dashboard/navigation.py.
"""

from __future__ import annotations

import streamlit as st

from dashboard.auth import gate
from dashboard.navigation import live_counts, pages

st.set_page_config(page_title="LoreGuard Ops", page_icon=":material/shield:", layout="wide")
gate()  # who is here (sign-in, or the local admin on loopback); every page then checks what they may do
page = st.navigation(pages())
with st.sidebar:
    live_counts()  # after st.navigation: its links need the pages registered
page.run()
