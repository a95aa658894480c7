"""Request guards: the checks every request to /wps passes before PyWPS or the WPS 2.0 module reads it.

One guard for WPS 1.0.0 (PyWPS) and WPS 2.0.0, in two places every request goes through:

``guard_request`` (called by ``ServiceApp.wps_endpoint`` before the version is even negotiated)
- body size: ``[server] maxrequestsize`` caps every POST body, with or without Content-Length
  (chunked); a larger one is answered 413 with an ExceptionReport naming the limit. The body is
  read once and handed on as a plain stream with its length, so neither PyWPS (which cannot size a
  chunked request and fails with a 500) nor the WPS 2.0 module ever reads the socket themselves.
- XML: a body whose prolog holds a DOCTYPE (the only place entities can be declared) is refused
  before any XML parser sees it, in any encoding (UTF-16/32 included; encodings whose ASCII range
  differs from ASCII, such as UTF-7 or EBCDIC, are refused outright): no XXE, no billion laughs,
  no external DTD fetch. PyWPS parses 1.0.0 bodies with lxml's default parser, so this is the line.

``GuardedService.execute`` (PyWPS's Execute, the one door to a job for WPS 1.0.0 KVP, XML and
JSON, WPS 2.0.0 and OGC API - Processes)
- input identifiers the process does not have, and more values than an input takes, are refused
  (PyWPS would drop them silently);
- literal values of the wrong type, out of range or not among the allowed values are refused with
  what is allowed (PyWPS says only "Input data not valid using mode 1");
- POST references (``method="POST"``, Body, BodyReference) are refused: PyWPS fetches a
  BodyReference with ``requests.get`` in the web server while it parses the request, unchecked;
- http(s) references go through ``references.precheck`` (literal non-public addresses, localhost,
  denied hosts: refused before any connection; the job checks the resolved address again);
- file:// references must resolve (``realpath``: every symlink followed, ``..`` removed) to a
  file inside one of ``[server] allowedinputpaths``, on a path boundary (``/data/in`` does not
  allow ``/data/in-other``); the reference is rewritten to the resolved path, so what PyWPS links
  is what was checked. PyWPS's own check (a string prefix test) is replaced by the same one.
- ServerBusy (queue full, job slots busy) is answered with HTTP 503 and Retry-After, in every
  protocol (PyWPS answers 400, which tells a client the request itself was wrong).

``runtime.references.local_input_file`` is the job-time twin for file inputs: a job reads only files inside the
allowed input folders or its own work folder, whatever a link was changed to since.
"""
import importlib
import io
import logging
import re
import sys
import uuid
from urllib.parse import urlparse
from xml.sax.saxutils import escape, quoteattr

from pywps import configuration
from pywps.exceptions import InvalidParameterValue, NoApplicableCode
from pywps.exceptions import ServerBusy as PyWPSServerBusy
from pywps.inout import basic as pywps_basic
from pywps.inout.inputs import BoundingBoxInput, ComplexInput
from werkzeug.wrappers import Response

from ..errors import LakesError
from ..jobs.dispatch import JobService, QuotaExceeded
from ..runtime import references, settings
from ..runtime.references import allowed_file

LOGGER = logging.getLogger("PYWPS")

READ_CHUNK = 1 << 16
DRAIN_BYTES = 16 << 20   # read and drop at most this much of a refused body, so the client sees the answer
RETRY_AFTER_S = 30
ASCII_ENCODINGS = re.compile(r"(utf-?8|us-ascii|ascii|iso[-_]?8859-\d+|latin-?1|l1|(windows|cp)-?125\d)",
                             re.IGNORECASE)
WPS2_NAMESPACE = b"http://www.opengis.net/wps/2.0"
# Characters XML 1.0 does not allow, even escaped: an ExceptionReport echoing them is not XML.
XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


# What only the server's log should see: SQL statements, driver errors, tracebacks, source paths.
# PyWPS answers an unexpected exception while it builds a response with NoApplicableCode(str(exc)).
INTERNAL_TEXT = re.compile(r"\[SQL:|sqlalchemy|sqlite3\.|psycopg|OperationalError|\(Background on this error|"
                           r"Traceback \(most recent|File \"/|site-packages|/usr/lib/python", re.IGNORECASE)
INTERNAL_MESSAGE = ("Internal error of the service (it was logged); try again later, and report it if it "
                    "persists.")


def xml_safe(text):
    """``text`` with the characters XML cannot carry replaced by U+FFFD."""
    return XML_INVALID.sub("\ufffd", str(text))


class Refusal(Exception):
    """A request refused before it reaches PyWPS or the WPS 2.0 module."""

    def __init__(self, code, message, locator="", status=400, head=b""):
        super().__init__(message)
        self.head = head  # the start of the body, when it was read (to tell the protocol version)
        self.code = code
        self.message = message
        self.locator = locator
        self.status = status


class ServerBusy(PyWPSServerBusy):
    """PyWPS's ServerBusy answered with HTTP 503 and Retry-After (PyWPS answers 400)."""

    def __init__(self, description="", locator=""):
        super().__init__(description or "The server is busy; try again later.", locator, code=503)

    def get_response(self, environ=None):
        response = super().get_response(environ)
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response


# ---------------------------------------------------------------------------------------------
# the request body


def max_request_bytes():
    return int(configuration.get_size_mb(configuration.get_config_value("server", "maxrequestsize")) * 1024 * 1024)


def _size_text(nbytes):
    return f"{nbytes / 2**20:g} MB" if nbytes >= 2**20 else f"{nbytes:,} bytes"


def _too_large(limit, head=b""):
    return Refusal("FileSizeExceeded", f"The request body is larger than the limit maxrequestsize = "
                   f"{_size_text(limit)} ([server] maxrequestsize); give large data by reference (an http(s) "
                   "URL) instead of inline, or ask the operator to raise the limit.", "request", 413, head)


def _read(stream, size):
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(min(READ_CHUNK, left))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _drain(stream, size):
    """Read and drop up to ``size`` bytes; returns the first READ_CHUNK of them."""
    head = b""
    while size > 0:
        chunk = stream.read(min(READ_CHUNK, size))
        if not chunk:
            break
        head = head or chunk
        size -= len(chunk)
    return head


def read_body(environ, limit):
    """The POST body (at most ``limit`` bytes), put back into ``environ`` as a plain stream with its length.

    Raises Refusal (413) when the body is larger, whether Content-Length says so or a chunked body
    runs past the limit.
    """
    stream = environ.get("wsgi.input")
    length = (environ.get("CONTENT_LENGTH") or "").strip()
    if stream is None:
        body = b""
    elif length:
        if not length.isdigit():
            raise Refusal("NoApplicableCode", "The Content-Length header is not a number.", "request", 400)
        size = int(length)
        if size > limit:
            raise _too_large(limit, _drain(stream, size) if size <= limit + DRAIN_BYTES else b"")
        body = _read(stream, size)
    elif environ.get("wsgi.input_terminated"):  # chunked: the server ends the stream
        body = _read(stream, limit + 1)
        if len(body) > limit:
            _drain(stream, DRAIN_BYTES)
            raise _too_large(limit, body[:READ_CHUNK])
    else:  # no length and a server that does not end the stream: nothing can be read safely
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return body


# ---------------------------------------------------------------------------------------------
# XML


def _xml_bytes(body):
    """The body as ASCII-compatible bytes for the prolog scan (UTF-16/32 re-encoded as UTF-8)."""
    head = body[:4]
    for boms, codec in (((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"), "utf-32"),
                        ((b"\xff\xfe", b"\xfe\xff"), "utf-16")):
        if head.startswith(boms):
            return body.decode(codec, errors="replace").encode("utf-8")
    for pattern, codec in ((b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
                           (b"\x00<\x00?", "utf-16-be"), (b"<\x00?\x00", "utf-16-le")):
        if head == pattern:
            return body.decode(codec, errors="replace").encode("utf-8")
    if b"\x00" in head:
        raise Refusal("InvalidParameterValue", "The XML request's encoding is not recognised; send UTF-8.", "request")
    declared = re.match(rb"(\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']", body[:512])
    if declared and not ASCII_ENCODINGS.fullmatch(declared.group(2).decode("ascii")):
        raise Refusal("InvalidParameterValue", f"XML requests in the encoding {declared.group(2).decode()!r} are "
                      "not accepted; send UTF-8.", "request")
    return body


def prolog_has_doctype(data):
    """True when the XML prolog (what comes before the root element) holds a DOCTYPE (or any <!...>)."""
    i, n = 0, len(data)
    if data.startswith(b"\xef\xbb\xbf"):
        i = 3
    while i < n:
        if data[i:i + 1].isspace():
            i += 1
        elif data.startswith(b"<?", i):
            end = data.find(b"?>", i + 2)
            if end < 0:
                return False
            i = end + 2
        elif data.startswith(b"<!--", i):
            end = data.find(b"-->", i + 4)
            if end < 0:
                return False
            i = end + 3
        else:
            return data.startswith(b"<!", i)
    return False


def check_xml(body):
    """Refuse an XML body with a DOCTYPE (entities, external DTDs) before any parser sees it."""
    if prolog_has_doctype(_xml_bytes(body)):
        raise Refusal("InvalidParameterValue", "XML requests with a DOCTYPE (a DTD or entity declarations) are not "
                      "accepted; send the request document alone.", "request")


# ---------------------------------------------------------------------------------------------
# the guard in front of /wps


def guard_request(request):
    """None when the request may go on; otherwise the WSGI response that refuses it."""
    if request.method != "POST":
        return None
    body = b""
    try:
        body = read_body(request.environ, max_request_bytes())
        if "json" not in (request.content_type or "").lower():
            check_xml(body)
    except Refusal as refusal:
        return refusal_response(refusal, wps2=_is_wps2(request, body or refusal.head))
    return None


def _is_wps2(request, body):
    """Is this a WPS 2.0.0 request (by its XML namespace or its version parameter)?"""
    try:
        head = _xml_bytes(body[:8192])
    except Refusal:
        head = body[:8192]
    if WPS2_NAMESPACE in head:
        return True
    return any(k.lower() == "version" and v == "2.0.0" for k, v in request.args.items())


def refusal_response(refusal, wps2=False):
    """An OWS ExceptionReport: OWS 2.0 for WPS 2.0.0 requests, OWS 1.1 (as PyWPS writes it) otherwise."""
    if wps2:
        from ..frontends.wps2 import exception_report

        code = "SizeExceeded" if refusal.code == "FileSizeExceeded" else refusal.code
        return exception_report(code, refusal.message, refusal.locator, refusal.status)
    return ows11_report(refusal.code, refusal.message, refusal.locator, refusal.status)


def ows11_report(code, message, locator="", status=400, headers=None):
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.opengis.net/ows/1.1 '
            'http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd" version="1.0.0" xml:lang="en-US">\n'
            f'  <ows:Exception exceptionCode={quoteattr(code)} locator={quoteattr(xml_safe(locator or ""))}>\n'
            f"    <ows:ExceptionText>{escape(xml_safe(message))}</ows:ExceptionText>\n"
            "  </ows:Exception>\n"
            "</ows:ExceptionReport>\n")
    return Response(body, status=status, content_type="text/xml; charset=utf-8", headers=headers)


def _validate_file_input(href):
    allowed_file(href)


PYWPS_REJECTED = "Request rejected due to exception"


def rejection_reason(exc):
    """What a client was told when its Execute was refused, as the job's record keeps it."""
    if isinstance(exc, NoApplicableCode):
        description = str(exc.description or "")
        if not INTERNAL_TEXT.search(description):
            return "Request rejected: " + (description or type(exc).__name__)
    return "Request rejected due to an internal error"


def _store_status_with_reason(original):
    """PyWPS marks a refused WPS 1.0.0 Execute "Request rejected due to exception"; the job's record
    (its page, ``wps-lakes jobs show``) keeps the reason the client's ExceptionReport gave instead.
    PyWPS calls this inside its ``except`` block, so the exception is the one being handled."""
    def store_status(uuid_, status, message=None, status_percentage=None):
        exc = sys.exc_info()[1]
        if message == PYWPS_REJECTED and exc is not None:
            message = rejection_reason(exc)
        return original(uuid_, status, message, status_percentage)

    store_status.wps_lakes_original = original
    return store_status


def harden_pywps():
    """Four fixes to PyWPS, applied once: its file:// check (a string prefix test on the unresolved
    path) becomes ``allowed_file``; its ExceptionReports drop the characters XML cannot carry (PyWPS
    echoes request values, control characters included, and the report is then not XML) and hide what
    only the log should see (PyWPS turns an unexpected exception into a report of its text: SQL
    statements and their parameters, for one). And WPS 1.0.0 job ids become random (uuid4): PyWPS's
    uuid1 is a clock reading and the host's address, guessable, while a job's id is the only key to
    its status document and outputs. And a refused Execute's job record keeps the reason the
    client was given (``rejection_reason``)."""
    pywps_basic.ComplexInput._validate_file_input = staticmethod(_validate_file_input)
    service_module = importlib.import_module("pywps.app.Service")
    service_module.uuid = RandomUuids
    if getattr(service_module.store_status, "wps_lakes_original", None) is None:
        service_module.store_status = _store_status_with_reason(service_module.store_status)
    if getattr(NoApplicableCode.get_response, "wps_lakes_original", None) is None:
        original = NoApplicableCode.get_response

        def get_response(self, environ=None):
            description = str(self.description or "")
            if INTERNAL_TEXT.search(description):
                LOGGER.error("internal error, hidden from the client: %s", description)
                description = INTERNAL_MESSAGE
                self.code = max(int(self.code or 500), 500)
            self.description = xml_safe(description)
            self.locator = xml_safe(self.locator or "")
            return original(self, environ)

        get_response.wps_lakes_original = original
        NoApplicableCode.get_response = get_response


# ---------------------------------------------------------------------------------------------
# Execute inputs


def _refuse(message, locator):
    raise InvalidParameterValue(message, locator)


def check_inputs(process, wps_request):
    """Check (and where needed rewrite) the parsed inputs of an Execute request; see the module doc."""
    from ..frontends.bridge import ServiceError, check_literal

    definitions = {i.identifier: i for i in process.inputs}
    policy = settings.reference_policy()
    for identifier, items in (wps_request.inputs or {}).items():
        definition = definitions.get(identifier)
        if definition is None:
            _refuse(f"Process {process.identifier} has no input {str(identifier)[:60]!r}; its inputs are "
                    f"{', '.join(definitions)}.", str(identifier)[:60])
        items = items if isinstance(items, (list, tuple)) else [items]
        if len(items) > definition.max_occurs:
            _refuse(f"Input {identifier} takes at most {definition.max_occurs} value(s); {len(items)} were given.",
                    identifier)
        for item in items:
            if not isinstance(item, dict):
                continue
            if isinstance(definition, ComplexInput):
                _check_complex(identifier, item, policy)
            elif isinstance(definition, BoundingBoxInput):
                continue
            else:
                if item.get("href"):
                    _refuse(f"Input {identifier} is a literal value; give it inline, not by reference.", identifier)
                try:
                    check_literal(definition, "" if item.get("data") is None else item.get("data"))
                except ServiceError as error:
                    _refuse(error.message, error.locator or identifier)


def _check_complex(identifier, item, policy):
    method = str(item.get("method") or "GET").upper()
    if method != "GET" or item.get("body") or item.get("bodyreference"):
        _refuse(f"Input {identifier}: POST references (method=\"POST\", Body, BodyReference) are not accepted; "
                "give a plain reference (xlink:href, fetched with GET) or the data inline.", identifier)
    href = item.get("href")
    if not href:
        return
    href = str(href).strip()
    scheme = urlparse(href).scheme.lower()
    if scheme == "file":
        item["href"] = "file://" + str(allowed_file(href))
    elif scheme in ("http", "https"):
        try:
            references.precheck(href, policy)
        except LakesError as exc:
            _refuse(f"Input {identifier}: {exc}", identifier)
    else:
        _refuse(f"Input {identifier}: references must be http or https URLs (or file:// inside the server's "
                f"allowed input folders), not {href[:60]!r}.", identifier)


class RandomUuids:
    """Stands in for the uuid module in pywps.app.Service, whose only use of it names a request."""
    uuid1 = staticmethod(uuid.uuid4)


class GuardedService(JobService):
    """PyWPS's Service with the input checks above in front of Execute and ServerBusy as 503."""

    def __init__(self, *args, **kwargs):
        harden_pywps()
        super().__init__(*args, **kwargs)

    def execute(self, identifier, wps_request, uuid):
        process = self.processes.get(identifier)
        if process is not None:
            check_inputs(process, wps_request)
        try:
            return super().execute(identifier, wps_request, uuid)
        except PyWPSServerBusy as exc:
            if isinstance(exc, (ServerBusy, QuotaExceeded)):
                raise
            raise ServerBusy(exc.description, exc.locator) from None
