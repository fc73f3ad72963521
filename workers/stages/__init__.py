"""Pipeline stages as pure functions: data in, data out; no Temporal, no SQLAlchemy."""
