"""The dashboard's database access: one engine per process, sessions per read (settings: dashboard/config.py,
re-exported here for the pages)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dashboard.config import settings
from dashboard.temporal import gateway
from data.db import make_engine, make_session_factory
from operations import Context
from workers import processing


class DatabaseUnavailable(RuntimeError):
    """The app database cannot be read (missing, unreachable, or not migrated); the message says which."""


@st.cache_resource(show_spinner=False, on_release=lambda engine: engine.dispose())
def _engine(url: str) -> Engine:
    return make_engine(url)


def engine() -> Engine:
    return _engine(settings().target_database_url)


def sessions() -> sessionmaker[Session]:
    return make_session_factory(engine())


def database_label() -> str:
    return make_url(settings().target_database_url).render_as_string(hide_password=True)


def unavailable(exc: SQLAlchemyError) -> DatabaseUnavailable:
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return DatabaseUnavailable(f"{database_label()}: {reason}")


@contextmanager
def reading() -> Iterator[Session]:
    """A session for reads; any database failure comes out as DatabaseUnavailable with a readable reason."""
    try:
        with sessions()() as session:
            yield session
    except SQLAlchemyError as exc:
        raise unavailable(exc) from exc


def operations_context() -> Context:
    """What the operations layer needs, from this process's settings, engine and Temporal gateway, and the
    workers' processing for a dry run and a re-evaluation's preview."""
    return Context(settings(), sessions(), gateway(), processing)
