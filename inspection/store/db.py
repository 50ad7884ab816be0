"""Engine, sessions and migrations: :class:`Store` is the one handle on the database and image files.

Backends: SQLite (a file, the default) and PostgreSQL (``postgresql+psycopg://...``).

Transactions:

* :meth:`Store.session` gives a session for reading; whatever it did is rolled back at the end.
* :meth:`Store.write` gives a session inside ONE write transaction that commits when the block
  ends without an exception and rolls back otherwise. Write transactions are serialised across
  threads and processes: on SQLite the transaction starts with ``BEGIN IMMEDIATE`` (the write
  lock is taken up front, waiting up to ``busy_timeout_s``), on PostgreSQL it takes
  ``pg_advisory_xact_lock(LEDGER_LOCK_KEY)`` first. This is what keeps the evidence chain a
  single chain when several processes append at once.

:meth:`Store.open` runs the Alembic migrations to head (under the same kind of lock, so several
processes opening a fresh database at once migrate it once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from inspection.config import StoreConfig
from inspection.store import repo
from inspection.store.images import ImageFiles

logger = logging.getLogger(__name__)

LEDGER_LOCK_KEY = 0x57454C44  # "WELD": PostgreSQL advisory lock serialising write transactions
MIGRATION_LOCK_KEY = 0x57454C45  # serialises migrations on PostgreSQL
ALEMBIC_DIR = Path(__file__).resolve().parent / "alembic"
SUPPORTED_SCHEMES = ("sqlite", "postgresql")

_WRITE_OPTION = "weldinspect_write"


class StoreError(RuntimeError):
    """The store could not be opened or used; the message names the URL/path and the reason."""


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


def create_store_engine(url: str, *, busy_timeout_s: float = 30.0) -> Engine:
    """An engine for ``url`` with the transaction behaviour described in the module docstring.

    SQLite: WAL journal, foreign keys on, ``busy_timeout_s`` for locks, driver-level autocommit off
    so that SQLAlchemy's ``begin`` event emits ``BEGIN`` / ``BEGIN IMMEDIATE`` itself.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:
        msg = f"invalid database URL {url!r}: {exc}; e.g. sqlite:////path/to/weldinspect.db"
        raise StoreError(msg) from exc
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_SCHEMES:
        msg = f"unsupported database {backend!r} in {_redact(url)}; supported: {', '.join(SUPPORTED_SCHEMES)}"
        raise StoreError(msg)
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            msg = f"SQLite store needs a file path, got {url!r} (in-memory databases are not shared)"
            raise StoreError(msg)
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s})
        timeout_ms = int(busy_timeout_s * 1000)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
            cur = dbapi_connection.cursor()
            cur.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = FULL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True)


def _lock(conn: Connection, key: int) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def migrate(engine: Engine, revision: str = "head") -> None:
    """Run the packaged Alembic migrations up to ``revision`` in one locked transaction."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            _lock(conn, MIGRATION_LOCK_KEY)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


class Store:
    """The database plus the content-addressed image directory. Use :meth:`open`."""

    def __init__(self, engine: Engine, images: ImageFiles) -> None:
        self.engine = engine
        self.images = images

    @classmethod
    def open(
        cls, url: str, images_dir: Path, *, busy_timeout_s: float = 30.0, migrate_db: bool = True
    ) -> Store:
        """Connect to ``url``, migrate it to head (unless ``migrate_db`` is False) and return the store."""
        engine = create_store_engine(url, busy_timeout_s=busy_timeout_s)
        try:
            if migrate_db:
                migrate(engine)
        except Exception as exc:
            engine.dispose()
            msg = f"could not open the store at {_redact(url)}: {type(exc).__name__}: {exc}"
            raise StoreError(msg) from exc
        images_dir = Path(images_dir)
        images_dir.mkdir(parents=True, exist_ok=True)
        logger.info("opened store %s (images in %s)", _redact(url), images_dir)
        return cls(engine, ImageFiles(images_dir))

    @classmethod
    def from_config(cls, cfg: StoreConfig) -> Store:
        """:meth:`open` with the URL and image directory of a :class:`StoreConfig`."""
        return cls.open(cfg.db_url, cfg.images_dir)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Release all pooled connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for reading; rolled back at the end (use :meth:`write` to change anything)."""
        with Session(self.engine, expire_on_commit=False) as s:
            try:
                yield s
            finally:
                s.rollback()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One serialised write transaction: commits on success, rolls back on any exception."""
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                _lock(conn, LEDGER_LOCK_KEY)
                with Session(bind=conn, expire_on_commit=False, autoflush=True) as s:
                    yield s
                    s.flush()

    # ---- repository conveniences (each its own transaction) -------------------------------------

    def get_inspection(self, inspection_id: str) -> repo.InspectionRecord | None:
        """The inspection with this id, or None."""
        with self.session() as s:
            return repo.get_inspection(s, inspection_id)

    def find_by_idempotency_key(self, key: str) -> repo.InspectionRecord | None:
        """The inspection stored with this idempotency key, or None."""
        with self.session() as s:
            return repo.find_by_idempotency_key(s, key)

    def list_inspections(
        self, filters: repo.InspectionFilter | None = None, page: repo.Page | None = None
    ) -> repo.PageResult:
        """Inspections matching ``filters``, newest first, one page of them."""
        with self.session() as s:
            return repo.list_inspections(s, filters or repo.InspectionFilter(), page or repo.Page())

    def get_machine(self, serial: str) -> repo.MachineInfo | None:
        """The machine with this serial, or None."""
        with self.session() as s:
            return repo.get_machine(s, serial)

    def list_machines(self) -> list[repo.MachineInfo]:
        """All machines, by serial."""
        with self.session() as s:
            return repo.list_machines(s)

    def list_reviews(self, inspection_id: str) -> list[repo.ReviewInfo]:
        """Reviews of one inspection, oldest first."""
        with self.session() as s:
            return repo.list_reviews(s, inspection_id)

    def add_recommendation(self, **kwargs: Any) -> str:
        """:func:`repo.add_recommendation` in its own write transaction; returns the new id."""
        with self.write() as s:
            return repo.add_recommendation(s, **kwargs)

    def add_recommendation_outcome(self, **kwargs: Any) -> str:
        """:func:`repo.add_recommendation_outcome` in its own write transaction; returns the new id."""
        with self.write() as s:
            return repo.add_recommendation_outcome(s, **kwargs)

    def list_recommendations(self, machine_serial: str | None = None) -> list[repo.RecommendationInfo]:
        """Recommendations (optionally of one machine), oldest first."""
        with self.session() as s:
            return repo.list_recommendations(s, machine_serial)

    def add_api_key(
        self, name: str, role: str, key_hash: str, station_id: str | None = None
    ) -> repo.ApiKeyInfo:
        """Store a new API key's hash (never the key itself)."""
        with self.write() as s:
            return repo.add_api_key(s, name=name, role=role, key_hash=key_hash, station_id=station_id)

    def find_api_key(self, key_hash: str) -> repo.ApiKeyInfo | None:
        """The active (not revoked) API key with this hash, or None."""
        with self.session() as s:
            return repo.find_api_key(s, key_hash)

    def revoke_api_key(self, key_id: str, when: datetime | None = None) -> bool:
        """Revoke an API key; False when no active key has this id."""
        with self.write() as s:
            return repo.revoke_api_key(s, key_id, when)

    def list_api_keys(self) -> Sequence[repo.ApiKeyInfo]:
        """All API keys (revoked ones too), oldest first."""
        with self.session() as s:
            return repo.list_api_keys(s)
