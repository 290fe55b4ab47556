#!/bin/sh
# Runs once, when PostgreSQL initialises an empty data volume (/docker-entrypoint-initdb.d):
# the roles Baton and Temporal connect as, so that neither is the superuser. Baton owns its
# database; Temporal may create its two (the temporal-schema job does).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v app_password="$APP_DB_PASSWORD" -v temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE baton LOGIN PASSWORD :'app_password';
CREATE DATABASE baton OWNER baton;
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
SQL
