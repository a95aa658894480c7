"""Input references: fetching http(s) ones, and the folders file:// ones may name, without letting a request
reach places it should not.

Rules (each refusal is a LakesError naming the rule):
- only http and https are fetched; file:// references are checked by ``allowed_file`` (at request time)
  and ``local_input_file`` (in the job) against ``[server] allowedinputpaths``;
- an address under this service's own ``outputurl`` is read from the output folder directly
  (chaining one job's output into the next works even when the service runs on loopback); it must
  name a file inside the output folder;
- every other host must resolve only to public addresses: loopback, private, link-local (cloud
  metadata), shared, multicast and reserved ranges are refused, also when an IPv6 address embeds
  one (IPv4-mapped, 6to4, NAT64); ``[references] allowed_hosts`` (a host, host:port or network)
  lifts this for named servers, ``denied_hosts`` (a host or network) refuses public ones too;
- the address that was checked is the address connected to: each host is resolved once and the
  connection is pinned to that address (no second lookup a DNS rebinding could answer differently);
  redirects are followed by hand, each hop checked the same way;
- time and size are bounded: connect/read timeouts, a total ``download_timeout``, and
  ``Limits.max_download_bytes`` on the decoded bytes (a gzip bomb stops at the cap);
- the file is created new in the job's work folder (never through a link, never over another
  input), under a name reduced to harmless characters.

``precheck`` is the request-time half (no DNS, no connection): the web server refuses literal
non-public addresses, ``localhost`` and denied hosts before a job exists. ``fetch_reference`` is
the job-time half and checks everything again.
"""
import base64
import ipaddress
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import certifi
import urllib3
from pywps import configuration
from pywps.exceptions import FileURLNotSupported

from ..errors import LakesError, LimitExceeded
from ..limits import DEFAULT_LIMITS

MAX_REDIRECTS = 5
CHUNK = 1 << 20
USER_AGENT = "wps_lakes reference fetcher"
REDIRECT_CODES = (301, 302, 303, 307, 308)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
FILE_PATH_FORBIDDEN = re.compile(r"[?#;\x00-\x1f\x7f]")  # cannot stand in a file:// URL path
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


@dataclass(frozen=True)
class ReferencePolicy:
    outputurl: str = ""
    outputpath: str = ""
    allowed_hosts: frozenset = field(default_factory=frozenset)  # "host", "host:port" or a network (CIDR)
    denied_hosts: frozenset = field(default_factory=frozenset)   # "host" or a network (CIDR)
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    download_timeout: float = 3600.0  # whole download of one reference, redirects included

    @classmethod
    def from_config(cls, section, outputurl="", outputpath=""):
        """From the ``[references]`` section (strings); missing keys keep the defaults."""
        def names(key):
            return frozenset(h.strip().lower() for h in section.get(key, "").replace(",", " ").split() if h.strip())

        def seconds(key):
            if not str(section.get(key, "")).strip():
                return getattr(cls, key)
            try:
                value = float(section[key])
            except ValueError:
                raise ValueError(f"[references] {key} must be a number of seconds, not {section[key]!r}") from None
            if not value > 0:
                raise ValueError(f"[references] {key} must be positive")
            return value

        return cls(outputurl=outputurl or "", outputpath=outputpath or "", allowed_hosts=names("allowed_hosts"),
                   denied_hosts=names("denied_hosts"), connect_timeout=seconds("connect_timeout"),
                   read_timeout=seconds("read_timeout"), download_timeout=seconds("download_timeout"))


# ---------------------------------------------------------------------------------------------
# names and messages


def display_url(url):
    """The URL as shown in messages: without user:password and query (they may carry credentials)."""
    try:
        parsed = urlparse(url)
        host = parsed.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parsed.port}" if parsed.port else ""
    except ValueError:
        return repr(str(url)[:80])
    if not parsed.scheme or not host:
        return repr(str(url)[:80])
    path = parsed.path if len(parsed.path) <= 120 else parsed.path[:117] + "..."
    return f"{parsed.scheme}://{host}{port}{path}"


def safe_filename(url, default="input"):
    """A file name from the URL's last path segment, reduced to harmless characters."""
    name = os.path.basename(unquote(urlparse(url).path)) or default
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name[:120] or default


def new_file(folder, name):
    """Create a new, empty file in ``folder`` named after ``name`` (``name_1``, ... when taken).

    Never opens an existing file or follows a link: a PyWPS link to another input (or anything
    else already in the folder) is never written through.
    """
    folder = Path(folder)
    stem, suffix = os.path.splitext(name)
    for n in range(1000):
        path = folder / (name if n == 0 else f"{stem}_{n}{suffix}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            continue
        return path, os.fdopen(fd, "wb")
    raise LakesError(f"too many inputs named {name!r} in one job")


# ---------------------------------------------------------------------------------------------
# addresses


def _ip(text):
    """An address from a URL host: IPv4/IPv6 literals and the legacy IPv4 forms (2130706433, 127.1)."""
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        pass
    if re.fullmatch(r"(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}", text, re.IGNORECASE):
        try:
            return ipaddress.ip_address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _embedded(ip):
    """The IPv4 address an IPv6 address carries to the IPv4 internet, if any."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.ip_address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip):
    """True for addresses on the public internet only."""
    inner = _embedded(ip)
    if inner is not None and not is_public(inner):
        return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved and not ip.is_link_local


def _in_rules(ip, host, port, rules):
    """Is (host, port, ip) named by one of the rules (host, host:port, address or network)?"""
    host = (host or "").lower().rstrip(".")
    for rule in rules:
        if rule in (host, f"{host}:{port}", f"[{host}]:{port}"):
            return True
        if ip is not None:
            try:
                if ip in ipaddress.ip_network(rule.strip("[]"), strict=False):
                    return True
            except ValueError:
                continue
    return False


def _refuse_address(url, host, ip):
    return LakesError(f"reference {display_url(url)} refused: {host} is (or resolves to) {ip}, which is not a "
                      "public address (loopback, private, link-local and cloud metadata addresses are not "
                      "fetched); pass the data inline or from a public server, or ask the operator to list the "
                      "host in [references] allowed_hosts")


def _parts(url):
    try:
        parsed = urlparse(url)
        port = parsed.port
    except ValueError:
        raise LakesError(f"reference {str(url)[:80]!r} is not a valid URL") from None
    if parsed.scheme.lower() not in ("http", "https"):
        raise LakesError(f"reference {display_url(url)}: only http and https references are accepted here")
    host = parsed.hostname
    if not host:
        raise LakesError(f"reference {display_url(url)} has no host")
    return parsed, host, port or (443 if parsed.scheme.lower() == "https" else 80)


def precheck(url, policy):
    """Request-time check, with no DNS lookup and no connection: scheme, literal addresses, local
    names, denied hosts, and references into our own output folder. LakesError on refusal."""
    if own_output_file(url, policy) is not None:
        return
    parsed, host, port = _parts(url)
    ip = _ip(host)
    if _in_rules(ip, host, port, policy.denied_hosts):
        raise LakesError(f"reference {display_url(url)} refused: the host is in [references] denied_hosts")
    if _in_rules(ip, host, port, policy.allowed_hosts):
        return
    name = host.lower().rstrip(".")
    if ip is None and (name in LOCAL_NAMES or name.endswith(".localhost")):
        raise _refuse_address(url, host, "a loopback address")
    if ip is not None and not is_public(ip):
        raise _refuse_address(url, host, ip)


def check_host(url, policy):
    """Resolve the host once and check every address; returns ``(parsed, host, port, address)``,
    the address to connect to. LakesError when the host may not be fetched."""
    parsed, host, port = _parts(url)
    literal = _ip(host)
    if _in_rules(literal, host, port, policy.denied_hosts):
        raise LakesError(f"reference {display_url(url)} refused: the host is in [references] denied_hosts")
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError):
            raise LakesError(f"reference {display_url(url)}: host {host} cannot be resolved") from None
        addresses = []
        for info in infos:
            ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise LakesError(f"reference {display_url(url)}: host {host} cannot be resolved")
    allowed = _in_rules(literal, host, port, policy.allowed_hosts)
    for ip in addresses:
        if _in_rules(ip, None, port, policy.denied_hosts):
            raise LakesError(f"reference {display_url(url)} refused: {host} resolves to {ip}, which is in "
                             "[references] denied_hosts")
        if not allowed and not _in_rules(ip, None, port, policy.allowed_hosts) and not is_public(ip):
            raise _refuse_address(url, host, ip)
    return parsed, host, port, addresses[0]


# ---------------------------------------------------------------------------------------------
# fetching


def own_output_file(url, policy):
    """The local file behind a URL under our own outputurl, or None if the URL is elsewhere."""
    if not policy.outputurl or not policy.outputpath:
        return None
    base = policy.outputurl.rstrip("/") + "/"
    if not str(url).startswith(base):
        return None
    root = Path(policy.outputpath).resolve()
    relative = unquote(url[len(base):].split("?", 1)[0].split("#", 1)[0])
    path = None if "\0" in relative else (root / relative).resolve()
    if path is None or root not in path.parents or not path.is_file():
        raise LakesError(f"reference {display_url(url)} names no output of this service")
    return path


def _open(parsed, host, port, address, policy, timeout):
    """GET the URL from ``address`` (already checked), with the URL's host name for HTTP and TLS."""
    connect = min(policy.connect_timeout, timeout)
    read = min(policy.read_timeout, timeout)
    options = {"timeout": urllib3.Timeout(connect=connect, read=read), "retries": False, "maxsize": 1}
    if parsed.scheme.lower() == "https":
        pool = urllib3.HTTPSConnectionPool(str(address), port, server_hostname=host, assert_hostname=host,
                                           cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(), **options)
    else:
        pool = urllib3.HTTPConnectionPool(str(address), port, **options)
    default_port = 443 if parsed.scheme.lower() == "https" else 80
    name = f"[{host}]" if ":" in host else host
    headers = {"Host": name if port == default_port else f"{name}:{port}", "User-Agent": USER_AGENT,
               "Accept-Encoding": "identity"}
    if parsed.username is not None:
        credentials = f"{unquote(parsed.username)}:{unquote(parsed.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    target = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    try:
        response = pool.urlopen("GET", target, headers=headers, redirect=False, retries=False,
                                preload_content=False, assert_same_host=False)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        pool.close()
        raise LakesError(f"reference {display_url(parsed.geturl())} could not be fetched: "
                         f"{_reason(exc)}") from None
    return pool, response


def _reason(exc):
    if isinstance(exc, (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError)):
        return "timed out"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "TLS certificate or handshake error"
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "connection refused or unreachable"
    return type(exc).__name__


def fetch_reference(url, dest_dir, policy, limits=DEFAULT_LIMITS):
    """Download ``url`` into a new file in ``dest_dir`` and return its path."""
    own = own_output_file(url, policy)
    if own is not None:
        dest, out = new_file(dest_dir, safe_filename(url))
        with out, open(own, "rb") as source:
            shutil.copyfileobj(source, out, CHUNK)
        return dest
    deadline = time.monotonic() + policy.download_timeout
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        parsed, host, port, address = check_host(current, policy)
        pool, response = _open(parsed, host, port, address, policy, max(0.1, deadline - time.monotonic()))
        try:
            if response.status in REDIRECT_CODES:
                location = response.headers.get("Location", "")
                if not location:
                    raise LakesError(f"reference {display_url(current)} redirects without a Location")
                current = urljoin(current, location)
                continue
            if response.status != 200:
                raise LakesError(f"reference {display_url(url)} answered HTTP {response.status}")
            return _save(response, url, dest_dir, limits, deadline, policy)
        finally:
            response.release_conn()
            response.close()
            pool.close()
    raise LakesError(f"reference {display_url(url)} redirects more than {MAX_REDIRECTS} times")


def _save(response, url, dest_dir, limits, deadline, policy):
    declared = response.headers.get("Content-Length", "")
    if declared.strip().isdigit():
        limits.check("max_download_bytes", int(declared), f"the size of {display_url(url)}")
    dest, out = new_file(dest_dir, safe_filename(url))
    size = 0
    try:
        with out:
            while True:
                # read1: whatever arrived (decoded, at most CHUNK bytes), so the deadline is checked
                # between reads even when a server drips bytes; b"" only at the end.
                chunk = response.read1(CHUNK, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > limits.max_download_bytes:
                    raise LimitExceeded(f"{display_url(url)} is larger than the limit max_download_bytes = "
                                        f"{limits.max_download_bytes:,} bytes; use a smaller input or ask the "
                                        "operator to raise the limit")
                if time.monotonic() > deadline:
                    raise LimitExceeded(f"{display_url(url)} took longer than the limit [references] "
                                        f"download_timeout = {policy.download_timeout:g} s to download; use a "
                                        "faster server or a smaller input")
                out.write(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        dest.unlink(missing_ok=True)
        raise LakesError(f"reference {display_url(url)} could not be fetched: {_reason(exc)}") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest


# ---------------------------------------------------------------------------------------------
# file:// inputs


def allowed_roots():
    paths = configuration.get_config_value("server", "allowedinputpaths") or ""
    return [Path(os.path.realpath(p.strip())) for p in paths.split(os.pathsep) if p.strip()]


def _inside(path, roots):
    return any(path == root or root in path.parents for root in roots)


def allowed_file(href):
    """The resolved local path of a file:// reference inside ``allowedinputpaths``; FileURLNotSupported if not.

    The path is the one PyWPS would link (``urlparse(href).path``, not unquoted), resolved with every
    symlink followed; it must lie inside an allowed folder (on a path boundary) and be a file.
    """
    shown = str(href)[:200]
    parsed = urlparse(str(href))
    if parsed.scheme.lower() != "file":
        raise FileURLNotSupported(f"{shown!r} is not a file:// reference", "href")
    if parsed.netloc not in ("", "localhost"):
        raise FileURLNotSupported(f"file:// references name a path on this server, not on host {parsed.netloc!r}",
                                  "href")
    roots = allowed_roots()
    if not roots:
        raise FileURLNotSupported("This server accepts no file:// references ([server] allowedinputpaths is "
                                  "empty); give the data inline or by an http(s) URL.", "href")
    raw = parsed.path
    if not raw.startswith("/") or "\0" in raw:
        raise FileURLNotSupported(f"file:// reference {shown!r} needs an absolute path", "href")
    path = Path(os.path.realpath(raw))
    if not _inside(path, roots):
        raise FileURLNotSupported(f"file:// reference {shown!r} is outside the server's allowed input folders "
                                  "([server] allowedinputpaths; links are followed); give a file inside them, or "
                                  "the data inline or by an http(s) URL.", "href")
    if FILE_PATH_FORBIDDEN.search(str(path)):
        raise FileURLNotSupported(f"file:// reference {shown!r}: the file's name holds characters that cannot be "
                                  "used in a URL path (?, #, ; or control characters); rename it", "href")
    if not path.is_file():
        raise FileURLNotSupported(f"file:// reference {shown!r} names no readable file in the server's allowed "
                                  "input folders", "href")
    return path


def local_input_file(path, *workdirs):
    """Job-time check of a file input PyWPS prepared: a file (followed through links) inside the
    allowed input folders or the job's own work folders (the process's, and the input's: PyWPS keeps
    the folder where the request was parsed). Returns the resolved path; LakesError otherwise.
    (Callers keep using PyWPS's name for the file: its extension tells the readers the format.)"""
    resolved = Path(os.path.realpath(path))
    roots = allowed_roots() + [Path(os.path.realpath(w)) for w in workdirs if w]
    if not _inside(resolved, roots) or not resolved.is_file():
        raise LakesError(f"input file {Path(path).name!r} is no longer a file inside the server's allowed input "
                         "folders; give it again")
    return resolved
