"""Who sent the request being served: the user a valid access token names, or anonymous.

``service.auth`` tells it for each request (``acting_as``); the job layer records it as the owner of
the jobs the request starts, and the front-ends ask it before they list or dismiss a job. With no
tokens configured every request is anonymous, and every job is anonymous's.
"""
import contextvars
from contextlib import contextmanager
from dataclasses import dataclass

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Requester:
    user: str = ANONYMOUS
    admin: bool = False
    address: str = ""  # the client's address, for the audit trail

    @property
    def anonymous(self):
        return self.user == ANONYMOUS

    def may_manage(self, owner):
        """Whether this requester may see (in listings) and dismiss a job of ``owner``."""
        return self.admin or (owner or ANONYMOUS) == self.user



_CURRENT = contextvars.ContextVar("wps_lakes_requester", default=None)


def current():
    return _CURRENT.get() or Requester()


@contextmanager
def acting_as(requester):
    token = _CURRENT.set(requester)
    try:
        yield requester
    finally:
        _CURRENT.reset(token)
