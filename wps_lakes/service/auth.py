"""Users and access tokens: a WSGI middleware in front of the whole service.

Each token names a user. ``[auth] tokens_file`` holds one ``user token`` pair a line (a line with a
token alone is a user of its own, named ``token-`` and 8 hex digits of the token's SHA-256), and
``[auth] admins`` names the admins. The older form, ``[esgf] tokens`` and ``[esgf] tokens_file``
(tokens only, separated by spaces or commas), still works: each of its tokens is a user of its own.
Files are read again when they change, so tokens can be rotated without a restart.

When any token is configured, every request that starts or ends a job needs one:

- at the WPS endpoint (WPS 1.0.0 and 2.0.0): Execute and Dismiss, by GET (KVP) or by POST (XML or
  JSON); a POST whose operation cannot be told (not XML/JSON, a DOCTYPE, too large) counts as one;
- anywhere else (OGC API - Processes): every request that is not GET, HEAD or OPTIONS, i.e.
  ``POST /processes/{id}/execution`` and ``DELETE /jobs/{id}``;
- and the job list, ``GET /jobs``: it shows a user only their own jobs (admins see all). A browser's
  ``/jobs?f=html`` without a token gets the page listing no job; its script sends the token the user
  types in (``Authorization: Bearer``) when it fetches the JSON list.

GetCapabilities, DescribeProcess, GetStatus, GetResult, status documents, outputs and the other OGC
API read requests stay open: a job's status and outputs are reached by URLs that hold its random id,
which only its owner (and admins) are ever shown (the capability-URL model OWSLib, birdy and the
ESGF client need, since they poll without headers). A client gives the token as the
``COMPUTE-TOKEN`` header (the ESGF client), ``Authorization: Bearer <token>``, or the ``api_key``
query parameter (older clients). A missing token gets HTTP 401, a wrong one 403: an OWS
ExceptionReport at the WPS endpoint, an RFC 7807 problem document elsewhere. Nothing reaches the
service then, so no job is created.

Behind the middleware, ``runtime.users.current()`` tells who the request is from (anonymous when no
valid token came): the job layer records it as the owner of the jobs it starts.

Tokens never go further than this middleware: the headers are removed and ``api_key`` is cut out of
the query string (and of ``RAW_URI``/``REQUEST_URI``, which the access log may show) for every
request, protected or not, configured or not. They are compared in constant time: SHA-256 digests
with ``hmac.compare_digest``, against every configured token.
"""
import hashlib
import hmac
import io
import json
import logging
import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote_plus
from xml.sax.saxutils import escape

from lxml import etree
from pywps import configuration

from ..runtime import settings, users

LOGGER = logging.getLogger("PYWPS")
OPEN_METHODS = ("GET", "HEAD", "OPTIONS")
PROTECTED_OPERATIONS = ("execute", "dismiss")
OPEN_OPERATIONS = ("getcapabilities", "describeprocess", "getstatus", "getresult")
QUERY_PARAMETER = "api_key"
HEADER = "HTTP_COMPUTE_TOKEN"  # COMPUTE-TOKEN
REALM = "wps_lakes"
EXCEPTION_REPORT = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.opengis.net/ows/1.1 '
    'http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd" version="1.0.0" xml:lang="en-US">\n'
    '  <ows:Exception exceptionCode="NoApplicableCode" locator="COMPUTE-TOKEN">\n'
    "    <ows:ExceptionText>{text}</ows:ExceptionText>\n"
    "  </ows:Exception>\n"
    "</ows:ExceptionReport>\n")
MISSING = ("This request starts, ends or lists jobs, which needs an access token: send it as the COMPUTE-TOKEN "
           "header, as 'Authorization: Bearer <token>', or as the api_key query parameter.")
WRONG = "The access token was not accepted."


def split_tokens(text):
    return [t for t in re.split(r"[\s,]+", text or "") if t]


class TokenFile:
    """The tokens of one file, read again when it changes. ``named``: lines are ``user token`` pairs
    (``[auth] tokens_file``); otherwise every word is a token of its own (``[esgf] tokens_file``)."""

    def __init__(self, path, named):
        self.path = Path(path)
        self.named = named
        self.state = None
        self.users = {}  # token digest -> user

    def current(self):
        try:
            stat = self.path.stat()
            state = (stat.st_mtime_ns, stat.st_size)
            if state != self.state:
                self.users = self._parse(self.path.read_text())
                self.state = state
        except (OSError, UnicodeDecodeError):
            if self.state != "unreadable":
                LOGGER.error("tokens file %s cannot be read: job requests are refused to all until it can", self.path)
            self.state, self.users = "unreadable", {}
        return self.users

    def _parse(self, text):
        found = {}
        for number, line in enumerate(text.splitlines(), 1):
            words = [] if line.lstrip().startswith("#") else split_tokens(line)
            if not words:
                continue
            if not self.named:
                found.update({_digest(t): token_user(t) for t in words})
            elif len(words) == 1:
                found[_digest(words[0])] = token_user(words[0])
            elif len(words) == 2 and words[0] != users.ANONYMOUS:
                found[_digest(words[1])] = words[0]
            else:
                LOGGER.error("tokens file %s, line %d ignored: give 'user token' (a user may not be called %r)",
                             self.path, number, users.ANONYMOUS)
        return found


class TokenStore:
    """The configured tokens, as digests, and the user each names."""

    def __init__(self, tokens="", tokens_file=None, users_file=None, admins=()):
        self._inline = {_digest(t): token_user(t) for t in split_tokens(tokens)}
        self._files = [TokenFile(tokens_file, named=False)] if tokens_file else []
        self._files += [TokenFile(users_file, named=True)] if users_file else []
        self.admins = frozenset(admins)

    @classmethod
    def from_config(cls):
        esgf, auth = settings.section("esgf"), settings.section("auth")
        return cls(esgf.get("tokens", ""), esgf.get("tokens_file", "").strip() or None,
                   auth.get("tokens_file", "").strip() or None, split_tokens(auth.get("admins", "")))

    @property
    def enabled(self):
        """Tokens are asked for: some are configured, or a tokens file is (even an empty or unreadable one)."""
        return bool(self._inline or self._files)

    def user_of(self, tokens):
        """The user the first accepted token names, or None."""
        known = dict(self._inline)
        for token_file in self._files:
            known.update(token_file.current())
        for token in tokens:
            digest, user = _digest(token), None
            for candidate, name in known.items():
                if hmac.compare_digest(digest, candidate):  # no early exit: every token is compared
                    user = name
            if user is not None:
                return user
        return None

    def accepts(self, token):
        return self.user_of([token]) is not None


def token_user(token):
    """The user name of a token given without one."""
    return "token-" + hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _digest(token):
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class TokenGuard:
    """WSGI middleware: take the tokens out of every request; refuse job requests without a valid one."""

    def __init__(self, app, store=None):
        self.app = app
        self.store = store or TokenStore.from_config()
        self.wps_path = getattr(app, "wps_path", "/wps")
        self.max_body = _max_request_bytes()

    def __getattr__(self, name):  # the wrapped ServiceApp's attributes (wps, outputpath, ...)
        return getattr(self.app, name)

    def __call__(self, environ, start_response):
        tokens = take_tokens(environ)
        user = self.store.user_of(tokens) if tokens else None
        if self.store.enabled and (self.is_protected(environ) or self.is_job_list(environ)):
            if not tokens and not self.is_protected(environ) and wants_html_page(environ):
                # The jobs page without a token: the page itself, listing nothing; its script asks for
                # the token and fetches the JSON list with it.
                environ["wps_lakes.job_list_without_token"] = "1"
            elif not tokens:
                LOGGER.warning("refused %s %s: no access token", environ.get("REQUEST_METHOD"),
                               environ.get("PATH_INFO"))
                return self.refuse(environ, start_response, 401, MISSING)
            elif user is None:
                LOGGER.warning("refused %s %s: wrong access token", environ.get("REQUEST_METHOD"),
                               environ.get("PATH_INFO"))
                return self.refuse(environ, start_response, 403, WRONG)
        requester = users.Requester(user=user or users.ANONYMOUS, admin=user in self.store.admins,
                                    address=environ.get("REMOTE_ADDR", ""))
        with users.acting_as(requester):
            return self.app(environ, start_response)

    # -- what needs a token ------------------------------------------------------------------

    @staticmethod
    def is_job_list(environ):
        path = (environ.get("PATH_INFO") or "/").rstrip("/")
        return path == "/jobs" and environ.get("REQUEST_METHOD", "GET").upper() in ("GET", "HEAD")

    def is_protected(self, environ):
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = (environ.get("PATH_INFO") or "/").rstrip("/") or "/"
        if path != self.wps_path:
            return method not in OPEN_METHODS
        if method in ("GET", "HEAD"):
            return kvp_operation(environ.get("QUERY_STRING", "")) in PROTECTED_OPERATIONS
        if method == "OPTIONS":
            return False
        if method != "POST":
            return True
        body = read_body(environ, self.max_body)
        if body is None:  # too large to look at: it cannot be told apart from an Execute
            return True
        operation = body_operation(body)
        return operation not in OPEN_OPERATIONS

    # -- refusals ------------------------------------------------------------------------------

    def refuse(self, environ, start_response, status, text):
        reason = {401: "401 Unauthorized", 403: "403 Forbidden"}[status]
        path = (environ.get("PATH_INFO") or "/").rstrip("/") or "/"
        if path == self.wps_path:
            body = EXCEPTION_REPORT.format(text=escape(text)).encode()
            content_type = "text/xml; charset=utf-8"
        else:
            body = json.dumps({"type": "about:blank", "title": reason[4:], "status": status, "detail": text},
                              indent=2).encode()
            content_type = "application/problem+json"
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if status == 401:
            headers.append(("WWW-Authenticate", f'Bearer realm="{REALM}"'))
        _drain(environ)
        start_response(reason, headers)
        return [body]


def wants_html_page(environ):
    """A browser's request for a page: f=html, or an Accept header that prefers HTML to JSON."""
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    if "f" in query:
        return query["f"] == "html"
    accept = environ.get("HTTP_ACCEPT", "")
    return "text/html" in accept and "application/json" not in accept


def protect(app):
    """The service ``app`` behind a TokenGuard configured from ``[auth]`` and ``[esgf]``."""
    return TokenGuard(app)


# ---------------------------------------------------------------------------------------------
# request plumbing


def take_tokens(environ):
    """Remove every token from the request (headers, api_key) and return them."""
    tokens = []
    header = environ.pop(HEADER, None)
    if header and header.strip():
        tokens.append(header.strip())
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if authorization[:7].lower() == "bearer ":
        environ.pop("HTTP_AUTHORIZATION")
        if authorization[7:].strip():
            tokens.append(authorization[7:].strip())
    query = environ.get("QUERY_STRING", "")
    if QUERY_PARAMETER in query.lower():
        kept, found = strip_parameter(query)
        tokens += [t for t in found if t]
        environ["QUERY_STRING"] = kept
        for key in ("RAW_URI", "REQUEST_URI"):
            uri = environ.get(key)
            if uri and "?" in uri:
                base, uri_query = uri.split("?", 1)
                rest = strip_parameter(uri_query)[0]
                environ[key] = base + ("?" + rest if rest else "")
    return tokens


def strip_parameter(query):
    """``query`` without its api_key parameters (the rest byte for byte), and their values."""
    kept, found = [], []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if unquote_plus(name).strip().lower() == QUERY_PARAMETER:
            found.append(unquote_plus(value).strip())
        else:
            kept.append(part)
    return "&".join(kept), found


def kvp_operation(query):
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.lower() == "request":
            return value.strip().lower()
    return ""


def read_body(environ, limit):
    """The request body (and put it back for the service); None when it is larger than ``limit``."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH") or ""
    if length.strip():
        try:
            size = int(length)
        except ValueError:
            return None
        if size > limit:
            return None
        body = stream.read(size) if size else b""
    else:
        body = stream.read(limit + 1)
        if len(body) > limit:
            environ["wsgi.input"] = _Chain(body, stream)
            return None
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def body_operation(body):
    """The WPS operation a POST body asks for (lower case), or "" when it cannot be told."""
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        try:
            document = json.loads(head)
        except ValueError:
            return ""
        operation = document.get("operation") if isinstance(document, dict) else None
        return operation.lower() if isinstance(operation, str) else ""
    if not head.startswith(b"<") or re.search(rb"<!DOCTYPE|<!ENTITY", head[:65536], re.IGNORECASE):
        return ""
    try:
        for _, element in etree.iterparse(io.BytesIO(head), events=("start",), resolve_entities=False,
                                          no_network=True, load_dtd=False, huge_tree=False):
            return etree.QName(element).localname.lower()
    except etree.XMLSyntaxError:
        return ""
    return ""


def _max_request_bytes():
    try:
        return int(configuration.get_size_mb(configuration.get_config_value("server", "maxrequestsize"))
                   * 1024 * 1024)
    except (TypeError, ValueError):
        return 3 * 1024 * 1024


def _drain(environ, limit=1 << 20):
    """Read what is left of a small refused body, so the connection can be reused."""
    stream = environ.get("wsgi.input")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    if stream is not None and 0 < length <= limit and not isinstance(stream, io.BytesIO):
        stream.read(length)


class _Chain(io.RawIOBase):
    """Bytes already read, then the rest of the stream."""

    def __init__(self, head, rest):
        self._head = io.BytesIO(head)
        self._rest = rest

    def readable(self):
        return True

    def read(self, size=-1):
        data = self._head.read(size)
        if size is None or size < 0:
            return data + self._rest.read()
        if len(data) < size:
            data += self._rest.read(size - len(data))
        return data

    def readline(self, size=-1):
        line = self._head.readline(size)
        if line.endswith(b"\n") or (size is not None and 0 <= size <= len(line)):
            return line
        return line + self._rest.readline(-1 if size is None or size < 0 else size - len(line))


__all__ = ["TokenGuard", "TokenStore", "protect", "take_tokens"]
