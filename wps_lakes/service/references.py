"""Fetching http(s) input references without letting a request reach places it should not.

Rules (each refusal is a LakesError naming the rule):
- only http and https (file:// is handled by PyWPS against ``allowedinputpaths``);
- an address under this service's own ``outputurl`` is read from the output folder directly
  (chaining one job's output into the next works even when the service runs on loopback);
- every other host must resolve only to public addresses, unless it is listed in
  ``[references] allowed_hosts``; loopback, private, link-local (cloud metadata), multicast and
  reserved ranges are refused; redirects are followed by hand and checked the same way;
- time and size are bounded: connect/read timeouts, ``Limits.max_download_bytes``.
"""
import ipaddress
import os
import re
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import requests

from ..errors import LakesError, LimitExceeded
from ..limits import DEFAULT_LIMITS

MAX_REDIRECTS = 5
CHUNK = 1 << 20


@dataclass(frozen=True)
class ReferencePolicy:
    outputurl: str = ""
    outputpath: str = ""
    allowed_hosts: frozenset = field(default_factory=frozenset)  # "host" or "host:port"
    connect_timeout: float = 10.0
    read_timeout: float = 120.0


def safe_filename(url, default="input"):
    """A file name from the URL's last path segment, reduced to harmless characters."""
    name = os.path.basename(unquote(urlparse(url).path)) or default
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name[:120] or default


def own_output_file(url, policy):
    """The local file behind a URL under our own outputurl, or None if the URL is elsewhere."""
    if not policy.outputurl or not policy.outputpath:
        return None
    base = policy.outputurl.rstrip("/") + "/"
    if not url.startswith(base):
        return None
    root = Path(policy.outputpath).resolve()
    path = (root / unquote(url[len(base):].split("?", 1)[0])).resolve()
    if root not in path.parents or not path.is_file():
        raise LakesError(f"reference {url} names no output of this service")
    return path


def check_host(url, policy):
    """Refuse hosts that resolve to non-public addresses unless explicitly allowed."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise LakesError(f"reference {url!r}: only http and https references are accepted here")
    host = parsed.hostname
    if not host:
        raise LakesError(f"reference {url!r} has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if host in policy.allowed_hosts or f"{host}:{port}" in policy.allowed_hosts:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except socket.gaierror:
        raise LakesError(f"reference {url}: host {host} cannot be resolved") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not ip.is_global or ip.is_multicast:
            raise LakesError(
                f"reference {url} refused: {host} resolves to a non-public address ({ip}); "
                "pass the data inline or from a public server, or ask the operator to allow the host")


def fetch_reference(url, dest_dir, policy, limits=DEFAULT_LIMITS):
    """Download ``url`` into ``dest_dir`` and return the local path."""
    dest = Path(dest_dir) / safe_filename(url)
    own = own_output_file(url, policy)
    if own is not None:
        shutil.copyfile(own, dest)
        return dest
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        check_host(current, policy)
        try:
            response = requests.get(current, stream=True, allow_redirects=False,
                                    timeout=(policy.connect_timeout, policy.read_timeout))
        except requests.RequestException as exc:
            raise LakesError(f"reference {url} could not be fetched: {type(exc).__name__}") from None
        if response.is_redirect:
            current = urljoin(current, response.headers.get("Location", ""))
            response.close()
            continue
        with response:
            if response.status_code != 200:
                raise LakesError(f"reference {url} answered HTTP {response.status_code}")
            declared = int(response.headers.get("Content-Length") or 0)
            limits.check("max_download_bytes", declared, f"the size of {url}")
            size = 0
            with open(dest, "wb") as out:
                for chunk in response.iter_content(CHUNK):
                    size += len(chunk)
                    if size > limits.max_download_bytes:
                        out.close()
                        dest.unlink(missing_ok=True)
                        raise LimitExceeded(f"{url} is larger than max_download_bytes = "
                                            f"{limits.max_download_bytes:,} bytes")
                    out.write(chunk)
        return dest
    raise LakesError(f"reference {url} redirects more than {MAX_REDIRECTS} times")
