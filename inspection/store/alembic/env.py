"""Alembic environment for the store (run programmatically by :func:`inspection.store.db.migrate`).

When the caller passes a connection in ``config.attributes["connection"]`` (the normal path), the
migrations run inside the caller's transaction, which holds the migration lock. Otherwise the
URL comes from ``sqlalchemy.url`` (command-line use during development).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from inspection.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against ``config.attributes['connection']`` or a fresh engine for ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        msg = "no connection given and no sqlalchemy.url configured for the store migrations"
        raise RuntimeError(msg)
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


if context.is_offline_mode():
    msg = "offline (--sql) migrations are not supported for the store; run them against a database"
    raise RuntimeError(msg)
run_migrations_online()
