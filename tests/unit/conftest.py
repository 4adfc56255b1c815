"""Fixtures of the unit tests: ``db_engine`` runs a test on SQLite and on PostgreSQL."""

from tests.pg import db_engine, pg_url  # noqa: F401 - fixtures, found by pytest by name
