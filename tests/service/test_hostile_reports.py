"""PyWPS's ExceptionReports as hardened by ``guards.harden_pywps``: what only the log should see never
reaches the client, and a report echoing control characters is still XML.

PyWPS turns an unexpected exception met while it builds a capabilities or description document into
``NoApplicableCode(str(exc))`` (HTTP 400): under load a ``database is locked`` error was answered with
the SQL statement and its parameters. That path cannot be reached on demand through the live server
(the job database would have to fail between two statements of one request), so the report is built
here the way PyWPS builds it, with the real classes.
"""
import logging

import pytest
from lxml import etree
from pywps.exceptions import InvalidParameterValue, NoApplicableCode

from wps_lakes.service.guards import INTERNAL_MESSAGE, harden_pywps

SQL_ERROR = ("(sqlite3.OperationalError) database is locked\n[SQL: UPDATE pywps_requests SET status=? WHERE "
             "pywps_requests.uuid = ?]\n[parameters: (4, 'c0ffee')]\n(Background on this error at: "
             "https://sqlalche.me/e/20/e3q8)")
INTERNAL = [
    SQL_ERROR,
    'Traceback (most recent call last):\n  File "/srv/wps_lakes/service/app.py", line 1, in <module>',
    "OperationalError: could not connect to server: psycopg2 at 10.0.0.5",
    "No module named x (/work/main/.venv/lib/python3.11/site-packages/pywps/app/Service.py)",
]


@pytest.fixture(autouse=True, scope="module")
def hardened():
    harden_pywps()


def report(exc):
    response = exc.get_response({})
    root = etree.fromstring(response.get_data())  # well-formed, or this raises
    texts = ["".join(t.itertext()) for t in root.iter("{*}ExceptionText")]
    return response, root, texts


@pytest.mark.parametrize("text", INTERNAL, ids=["sql", "traceback", "driver", "source-path"])
def test_internal_text_is_logged_not_answered(text, caplog):
    with caplog.at_level(logging.ERROR, logger="PYWPS"):
        response, root, texts = report(NoApplicableCode(text, code=400))
    assert texts == [INTERNAL_MESSAGE]
    body = response.get_data(as_text=True)
    for secret in ("SQL", "pywps_requests", "c0ffee", "Traceback", "/srv/", "10.0.0.5", "site-packages"):
        assert secret not in body
    assert response.status_code == 500  # the service's fault, not the request's
    assert any(text.splitlines()[0] in record.getMessage() for record in caplog.records)


def test_user_messages_pass_unchanged():
    message = "Input score_threshold: '7' is not allowed; allowed: 0.0 to 1.0."
    response, _, texts = report(InvalidParameterValue(message, "score_threshold"))
    assert texts == [message] and response.status_code == 400


def test_control_characters_in_an_echoed_value_keep_the_report_xml():
    response, root, texts = report(NoApplicableCode("Unknown request \x1f\x08\x00 'x\ud800'", code=400))
    assert response.status_code == 400
    assert texts[0].startswith("Unknown request \ufffd\ufffd\ufffd")
    exception = next(root.iter("{*}Exception"))
    assert exception.get("exceptionCode") == "NoApplicableCode"


def test_hardening_applies_once():
    original = NoApplicableCode.get_response
    harden_pywps()
    assert NoApplicableCode.get_response is original
