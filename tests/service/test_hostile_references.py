"""Hostile references: the request-time check and the job-time fetcher, against real loopback servers.

Every refusal of a non-public address is shown to happen before any connection: a Python audit
hook records each ``socket.connect`` (and each DNS lookup) made during the call. Traffic goes to
this machine's loopback servers only; 169.254.169.254 and private ranges are never contacted.
"""
import contextlib
import gzip
import http.server
import os
import socket
import sys
import threading
import time

import pytest

from wps_lakes.errors import LakesError, LimitExceeded
from wps_lakes.limits import Limits
from wps_lakes.runtime.references import (
    ReferencePolicy,
    check_host,
    display_url,
    fetch_reference,
    own_output_file,
    precheck,
)

# ---------------------------------------------------------------------------------------------
# a loopback HTTP server with fixed routes, and a record of every connection the test makes

_EVENTS = threading.local()


def _audit(event, args):
    record = getattr(_EVENTS, "record", None)
    if record is None:
        return
    if event == "socket.connect":
        record.append(("connect", args[1]))
    elif event == "socket.getaddrinfo":
        record.append(("lookup", args[0]))


sys.addaudithook(_audit)


@contextlib.contextmanager
def network_calls():
    """The connects and DNS lookups made by this thread inside the block."""
    _EVENTS.record = calls = []
    try:
        yield calls
    finally:
        _EVENTS.record = None


def connects(calls):
    return [address for kind, address in calls if kind == "connect"]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.hits.append({"path": self.path, "headers": dict(self.headers)})
        route = self.server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            route = (404, {}, b"not here")
        if callable(route):
            return route(self)
        status, headers, body = route
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if headers.get("Transfer-Encoding") == "chunked":
            for start in range(0, len(body), 1 << 16):
                piece = body[start:start + (1 << 16)]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that drops its connection (a fetch stopped at a limit) is expected here, not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 serving ``routes``: path -> (status, headers, body) or a
    callable(handler); ``hits`` lists the requests it received."""

    def __init__(self, routes=None):
        self.httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self.httpd.routes = dict(routes or {})
        self.httpd.hits = []
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def routes(self):
        return self.httpd.routes

    @property
    def hits(self):
        return self.httpd.hits

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def drip(handler):
    """Headers at once, then one byte every 0.3 s for a minute."""
    handler.send_response(200)
    handler.send_header("Content-Length", "200")
    handler.end_headers()
    for _ in range(200):
        try:
            handler.wfile.write(b"x")
            handler.wfile.flush()
        except OSError:
            return
        time.sleep(0.3)


GZIP_BOMB = gzip.compress(b"\0" * (64 << 20), compresslevel=9)  # 64 MiB of zeros in ~64 KiB


@pytest.fixture(scope="module")
def server():
    with LoopbackServer() as srv:
        srv.routes.update({
            "/lakes.geojson": (200, {"Content-Type": "application/geo+json"}, b'{"type": "FeatureCollection"}'),
            "/big.bin": (200, {}, b"x" * 300_000),
            "/big-chunked.bin": (200, {"Transfer-Encoding": "chunked"}, b"x" * 300_000),
            "/bomb.geojson": (200, {"Content-Encoding": "gzip"}, GZIP_BOMB),
            "/lying-length.bin": (200, {"Content-Length": "10"}, b"x" * 10),
            "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
            "/to-private": (307, {"Location": "http://10.0.0.1/x"}, b""),
            "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
            "/loop": (302, {"Location": "/loop"}, b""),
            "/..%2F..%2Fescape.geojson": (200, {}, b"{}"),
            "/to-lakes": (301, {"Location": "/lakes.geojson"}, b""),
            "/error": (500, {}, b"Traceback: secret server internals"),
            "/drip": drip,
        })
        yield srv


def allowing(srv, **extra):
    return ReferencePolicy(allowed_hosts=frozenset({f"127.0.0.1:{srv.port}"}), **extra)


# ---------------------------------------------------------------------------------------------
# request-time and job-time refusals: no connection, and for literal addresses no lookup either

NON_PUBLIC = [
    "http://127.0.0.1:{port}/x.geojson", "http://127.8.9.10/x", "http://0.0.0.0/x", "http://localhost/x",
    "http://LOCALHOST./x", "http://api.localhost/x", "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/", "http://10.0.0.1/x", "http://172.16.5.4/x", "http://192.168.1.1/x",
    "http://100.64.0.1/x", "http://[::1]/x", "http://[fe80::1]/x", "http://[::ffff:127.0.0.1]/x",
    "http://[::ffff:169.254.169.254]/x", "http://[64:ff9b::a9fe:a9fe]/x", "http://[2002:7f00:1::]/x",
    "http://2130706433/x", "http://0x7f.1/x", "http://127.1/x", "http://017700000001/x", "http://224.0.0.1/x",
    "http://240.0.0.1/x", "http://255.255.255.255/x", "https://192.0.2.10/x", "http://user:pw@127.0.0.1/x",
]
BAD_URLS = ["file:///etc/passwd", "gopher://127.0.0.1:70/_x", "ftp://example.org/x", "dict://127.0.0.1:11211/",
            "jar:http://example.org/x!/", "http://", "http:///x", "http://[::1/x", "http://example.org:99999/x",
            "//example.org/x", "x"]


@pytest.mark.parametrize("url", NON_PUBLIC + BAD_URLS)
def test_precheck_refuses_without_any_network(url, server):
    url = url.format(port=server.port)
    with network_calls() as calls, pytest.raises(LakesError) as refused:
        precheck(url, ReferencePolicy())
    assert calls == []
    message = str(refused.value)
    assert "pw@" not in message
    if url in NON_PUBLIC:
        assert "not a public address" in message and "allowed_hosts" in message


def resolves(name):
    try:
        return bool(socket.getaddrinfo(name, 80))
    except (socket.gaierror, UnicodeError):
        return False


@pytest.mark.parametrize("url", NON_PUBLIC + ["http://vm/x"])
def test_fetch_refuses_non_public_before_connecting(url, server, tmp_path):
    """The job-time fetch resolves names (here from /etc/hosts) and refuses before any connection."""
    url = url.format(port=server.port)
    if url == "http://vm/x" and not resolves("vm"):
        pytest.skip("the name vm does not resolve on this machine")
    hits = len(server.hits)
    with network_calls() as calls, pytest.raises(LakesError):
        fetch_reference(url, tmp_path, ReferencePolicy())
    assert connects(calls) == []
    assert len(server.hits) == hits
    assert list(tmp_path.iterdir()) == []


def test_public_addresses_pass_the_precheck_without_network():
    for url in ("http://93.184.216.34/x", "https://8.8.8.8/x", "http://[2606:4700::1111]/x", "https://example.org/x"):
        with network_calls() as calls:
            precheck(url, ReferencePolicy())
        assert calls == [], url


def test_allow_and_deny_lists(server, tmp_path):
    url = f"{server.base}/lakes.geojson"
    for rule in (f"127.0.0.1:{server.port}", "127.0.0.1", "127.0.0.0/8"):
        policy = ReferencePolicy(allowed_hosts=frozenset({rule}))
        precheck(url, policy)
        assert fetch_reference(url, tmp_path, policy).read_bytes() == b'{"type": "FeatureCollection"}'
    with pytest.raises(LakesError, match="not a public address"):  # another port is not allowed
        precheck(f"http://127.0.0.1:{server.port + 1}/x", ReferencePolicy(allowed_hosts=frozenset({url[7:22]})))
    denied = ReferencePolicy(denied_hosts=frozenset({"93.184.216.0/24", "data.example.org"}))
    for bad in ("http://93.184.216.34/x", "http://DATA.example.org/x"):
        with network_calls() as calls, pytest.raises(LakesError, match="denied_hosts"):
            precheck(bad, denied)
        assert calls == []
    with pytest.raises(LakesError, match="denied_hosts"):
        check_host("http://93.184.216.34/x", denied)


def test_policy_from_config():
    policy = ReferencePolicy.from_config({"allowed_hosts": "data.example.org, 10.1.0.0/16  Other:8080",
                                          "denied_hosts": "evil.example.org", "read_timeout": "5",
                                          "download_timeout": ""}, "http://h/outputs", "/srv/out")
    assert policy.allowed_hosts == {"data.example.org", "10.1.0.0/16", "other:8080"}
    assert policy.denied_hosts == {"evil.example.org"} and policy.read_timeout == 5.0
    assert policy.download_timeout == ReferencePolicy.download_timeout
    with pytest.raises(ValueError, match="connect_timeout"):
        ReferencePolicy.from_config({"connect_timeout": "soon"})


# ---------------------------------------------------------------------------------------------
# fetching from an allowed loopback server


def test_redirects_are_checked_hop_by_hop(server, tmp_path):
    policy = allowing(server)
    assert fetch_reference(f"{server.base}/to-lakes", tmp_path, policy).name == "to-lakes"
    for path, reason in (("/to-metadata", "169.254.169.254"), ("/to-private", "10.0.0.1"),
                         ("/to-file", "only http and https"), ("/loop", "redirects more than 5 times")):
        with network_calls() as calls, pytest.raises(LakesError, match=reason):
            fetch_reference(f"{server.base}{path}", tmp_path, policy)
        assert set(connects(calls)) == {("127.0.0.1", server.port)}, path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["to-lakes"]


def test_size_limits(server, tmp_path):
    policy, limits = allowing(server), Limits(max_download_bytes=100_000)
    for path in ("/big.bin", "/big-chunked.bin", "/bomb.geojson"):
        started = time.monotonic()
        with pytest.raises(LimitExceeded, match="max_download_bytes = 100,000"):
            fetch_reference(f"{server.base}{path}", tmp_path, policy, limits)
        assert time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == []  # partial downloads are removed
    assert fetch_reference(f"{server.base}/big.bin", tmp_path, policy, Limits(max_download_bytes=300_000)).stat() \
        .st_size == 300_000


def test_download_timeout(server, tmp_path):
    policy = allowing(server, download_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(LimitExceeded, match="download_timeout = 1 s"):
        fetch_reference(f"{server.base}/drip", tmp_path, policy)
    assert time.monotonic() - started < 5
    assert list(tmp_path.iterdir()) == []


def test_errors_do_not_echo_credentials_or_server_text(server, tmp_path):
    url = f"http://alice:s3cr3t@127.0.0.1:{server.port}/error?token=abc123"
    with pytest.raises(LakesError) as refused:
        fetch_reference(url, tmp_path, allowing(server))
    message = str(refused.value)
    assert "HTTP 500" in message and "s3cr3t" not in message and "abc123" not in message
    assert "Traceback" not in message and "internals" not in message
    assert server.hits[-1]["headers"]["Authorization"].startswith("Basic ")
    assert server.hits[-1]["headers"]["Host"] == f"127.0.0.1:{server.port}"
    assert display_url("http://u:p@[::1]:8080/a/b?c=d#e") == "http://[::1]:8080/a/b"


def test_no_write_through_links_or_over_other_inputs(server, tmp_path):
    """A name already taken in the work folder (PyWPS links file:// inputs there) gets a new file."""
    outside = tmp_path / "outside.geojson"
    outside.write_text("precious")
    work = tmp_path / "work"
    work.mkdir()
    os.symlink(outside, work / "lakes.geojson")
    (work / "lakes_1.geojson").write_text("another input")
    path = fetch_reference(f"{server.base}/lakes.geojson?x=../../escape", work, allowing(server))
    assert path == work / "lakes_2.geojson" and path.read_bytes().startswith(b'{"type"')
    assert outside.read_text() == "precious" and (work / "lakes_1.geojson").read_text() == "another input"
    escaped = fetch_reference(f"{server.base}/..%2F..%2Fescape.geojson", work, allowing(server))
    assert escaped.parent == work and escaped.name == "escape.geojson"


def test_one_lookup_and_the_connection_goes_to_the_checked_address(server, tmp_path, monkeypatch):
    """No DNS rebinding window: the name is resolved once, and the connection is pinned to that answer
    (a second lookup here would answer 127.0.0.2, where nothing listens)."""
    answers = ["127.0.0.1", "127.0.0.2"]
    lookups = []
    real = socket.getaddrinfo

    def resolver(host, port, *args, **kwargs):
        if host == "rebind.test":
            lookups.append(host)
            address = answers[min(len(lookups), len(answers)) - 1]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    policy = ReferencePolicy(allowed_hosts=frozenset({f"rebind.test:{server.port}"}))
    with network_calls() as calls:
        path = fetch_reference(f"http://rebind.test:{server.port}/lakes.geojson", tmp_path, policy)
    assert path.read_bytes().startswith(b'{"type"')
    assert lookups == ["rebind.test"]
    assert connects(calls) == [("127.0.0.1", server.port)]
    assert server.hits[-1]["headers"]["Host"] == f"rebind.test:{server.port}"


def test_own_outputs_are_read_from_the_output_folder(tmp_path):
    outputs = tmp_path / "outputs"
    (outputs / "job1").mkdir(parents=True)
    (outputs / "job1" / "lakes.geojson").write_text("{}")
    (tmp_path / "secret.txt").write_text("no")
    policy = ReferencePolicy(outputurl="http://127.0.0.1:1/outputs", outputpath=str(outputs))
    work = tmp_path / "work"
    work.mkdir()
    with network_calls() as calls:
        path = fetch_reference("http://127.0.0.1:1/outputs/job1/lakes.geojson", work, policy)
    assert calls == [] and path.read_text() == "{}" and not path.is_symlink() and path.parent == work
    for bad in ("../secret.txt", "%2e%2e/secret.txt", "job1/../../secret.txt", "job1", "job1/%00x",
                "job1/missing.geojson"):
        with pytest.raises(LakesError, match="names no output of this service"):
            own_output_file(f"http://127.0.0.1:1/outputs/{bad}", policy)
