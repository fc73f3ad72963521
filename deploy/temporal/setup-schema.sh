#!/bin/sh
# One-shot (temporalio/admin-tools): create Temporal's two PostgreSQL databases if missing and bring both schemas
# (default store and visibility) to the version this image ships. Safe to run on every `docker compose up`.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS (the PostgreSQL host) is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD (the PostgreSQL password) is required}"
PORT="${DB_PORT:-5432}"
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12

sql_tool() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$PORT" -u "$POSTGRES_USER" "$@"
}

for target in "${DBNAME:-temporal}:temporal" "${VISIBILITY_DBNAME:-temporal_visibility}:visibility"; do
  db="${target%%:*}"
  schema="${target#*:}"
  echo "database ${db}: ${schema} schema"
  if ! output="$(sql_tool --db "$db" create 2>&1)"; then
    case "$output" in
      *"already exists"*) echo "database ${db} already exists" ;;
      *) echo "$output" >&2; exit 1 ;;
    esac
  fi
  # setup-schema only records version 0.0 on a new database; update-schema applies what is missing.
  sql_tool --db "$db" setup-schema -v 0.0
  sql_tool --db "$db" update-schema -d "${SCHEMA_ROOT}/${schema}/versioned"
done
echo "Temporal schemas are up to date"
