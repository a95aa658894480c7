"""Settings for the job database that PyWPS opens itself.

PyWPS commits to its request log several times per request (even GetCapabilities). With SQLite's
default rollback journal every commit is an fsync and writers block readers, so a busy server
serialises on the database. Write-ahead logging lets status polls read while jobs write, and
``synchronous=NORMAL`` keeps the database consistent across crashes without an fsync per commit.
"""
import sqlite3
import time

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

BUSY_TIMEOUT_MS = 30_000  # wait for a writer rather than fail with "database is locked"
_KEEPER = {}


def keep_open(url):
    """Hold one connection for the life of the process: PyWPS opens and closes a connection per
    query, and closing the last one checkpoints and deletes the write-ahead log (an fsync each time)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and url not in _KEEPER:
        _KEEPER[url] = sqlite3.connect(parsed.database, check_same_thread=False)
        _sqlite_settings(_KEEPER[url], None)


@event.listens_for(Engine, "connect")
def _sqlite_settings(dbapi_connection, _record):
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _write_ahead_log(dbapi_connection)
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _write_ahead_log(connection, attempts=600):
    """Switch the database to WAL (a setting kept in the file). The switch takes an exclusive lock
    without waiting on busy_timeout, so web workers booting together retry it rather than fail."""
    for _ in range(attempts):
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.05)
    raise sqlite3.OperationalError("the job database stayed locked for 30 s while switching it to WAL")
