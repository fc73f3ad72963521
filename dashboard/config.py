"""The dashboard's settings: one Settings per process, read by the database and the Temporal modules alike."""

from __future__ import annotations

import streamlit as st

from core.settings import Settings


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    return Settings()
