"""Alembic environment: run programmatically by `cloud-api migrate` with a connection in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from cloud_api.db.models import Base

config = context.config


def run_migrations_online() -> None:
    connection: Connection = config.attributes["connection"]
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run `cloud-api migrate`")
run_migrations_online()
