"""Job records: who started each job, with what, from where (the audit trail beside PyWPS's job log).

PyWPS's own table keeps each job's process, state, times and pid. This table, in the same database,
adds the owner (the user the request's token names; anonymous without tokens), the client's
address, the inputs as given (references and literal values; inline data by size only, never the
data itself), when it was accepted and when a backend started it. The owner decides who sees a job
in listings and who may dismiss it; the start times make the local queue fair between users.
"""
import datetime
import json
import logging
import os
from urllib.parse import urlparse

import sqlalchemy as sa
from pywps import dblog
from pywps.response.status import WPS_STATUS
from sqlalchemy.orm import declarative_base

from ..runtime.references import display_url
from ..runtime.users import ANONYMOUS

LOGGER = logging.getLogger("PYWPS")
UNFINISHED = (WPS_STATUS.ACCEPTED, WPS_STATUS.STARTED, WPS_STATUS.PAUSED)
MAX_LITERAL_CHARS = 200
MAX_URL_CHARS = 1000
NEVER = datetime.datetime.min

Base = declarative_base()


class JobRecord(Base):
    __tablename__ = "wps_lakes_job_records"

    uuid = sa.Column(sa.String(255), primary_key=True)
    owner = sa.Column(sa.String(255), nullable=False, index=True)
    process = sa.Column(sa.String(255))
    address = sa.Column(sa.String(64))
    inputs = sa.Column(sa.Text)  # JSON: {identifier: [value as given, ...]}
    accepted = sa.Column(sa.DateTime)
    started = sa.Column(sa.DateTime)


_TABLE_READY = set()  # (pid, database) where the table is known to exist


def session():
    """A session on PyWPS's job database, with this table created on first use."""
    db_session = dblog.get_session()
    bind = db_session.get_bind()
    key = (os.getpid(), str(bind.url))
    if key not in _TABLE_READY:
        try:
            JobRecord.__table__.create(bind, checkfirst=True)
        except sa.exc.SQLAlchemyError:  # another web worker created it at the same moment
            if not sa.inspect(bind).has_table(JobRecord.__tablename__):
                raise
        _TABLE_READY.add(key)
    return db_session


def _now():
    return datetime.datetime.now()  # local time, as PyWPS writes its own times


def inputs_as_given(wps_request):
    """The request's inputs as the audit trail keeps them: references and literal values."""
    given = {}
    for identifier, items in (wps_request.inputs or {}).items():
        for item in items:
            url = (getattr(item, "inpt", None) or {}).get("href")  # PyWPS keeps the reference as given
            if url and urlparse(url).scheme == "file":
                value = url[:MAX_URL_CHARS]
            elif url:
                value = display_url(url)  # without user:password and query, which may carry credentials
            elif hasattr(item, "data_format"):
                value = f"inline data ({item.data_format.mime_type})"
            else:
                value = str(item.data)[:MAX_LITERAL_CHARS]
            given.setdefault(identifier, []).append(value)
    return given


def add(uuid, process, requester, inputs):
    db_session = session()
    try:
        db_session.merge(JobRecord(uuid=str(uuid), owner=requester.user, process=process, address=requester.address,
                                   inputs=json.dumps(inputs), accepted=_now()))
        db_session.commit()
    finally:
        db_session.close()


def mark_started(uuid):
    db_session = session()
    try:
        db_session.query(JobRecord).filter_by(uuid=str(uuid)).update({"started": _now()})
        db_session.commit()
    finally:
        db_session.close()


def get(uuid):
    """The record of a job as a dict, or None (jobs from before records were kept have none)."""
    db_session = session()
    try:
        record = db_session.get(JobRecord, str(uuid))
        if record is None:
            return None
        return {"owner": record.owner, "process": record.process, "address": record.address,
                "inputs": json.loads(record.inputs or "{}"), "accepted": record.accepted, "started": record.started}
    finally:
        db_session.close()


def unfinished_count(owner, besides=None):
    """Jobs of ``owner`` queued or running, other than job ``besides``."""
    db_session = session()
    try:
        return (db_session.query(dblog.ProcessInstance)
                .join(JobRecord, JobRecord.uuid == dblog.ProcessInstance.uuid)
                .filter(JobRecord.owner == owner, JobRecord.uuid != str(besides),
                        dblog.ProcessInstance.operation == "execute",
                        sa.or_(dblog.ProcessInstance.status.is_(None),
                               dblog.ProcessInstance.status.in_(UNFINISHED)))
                .count())
    finally:
        db_session.close()


def pop_next_queued():
    """Take the next job from PyWPS's queue, round-robin between users: the user whose last job was
    started longest ago (or never) goes first, then each user's jobs in the order they came. Returns
    its uuid, or None when the queue is empty."""
    db_session = session()
    try:
        for _ in range(5):  # another process may take the chosen job first: choose again
            queued = (db_session.query(dblog.RequestInstance.uuid, JobRecord.owner, dblog.ProcessInstance.time_start)
                      .outerjoin(JobRecord, JobRecord.uuid == dblog.RequestInstance.uuid)
                      .outerjoin(dblog.ProcessInstance, dblog.ProcessInstance.uuid == dblog.RequestInstance.uuid)
                      .all())
            if not queued:
                return None
            owners = {owner or ANONYMOUS for _, owner, _ in queued}
            last_start = dict(db_session.query(JobRecord.owner, sa.func.max(JobRecord.started))
                              .filter(JobRecord.owner.in_(owners)).group_by(JobRecord.owner).all())
            uuid = min(queued, key=lambda row, starts=last_start: (starts.get(row[1] or ANONYMOUS) or NEVER,
                                                                  row[2] or NEVER))[0]
            taken = db_session.query(dblog.RequestInstance).filter_by(uuid=uuid).delete()
            db_session.commit()
            if taken:
                return uuid
        return None
    finally:
        db_session.close()
