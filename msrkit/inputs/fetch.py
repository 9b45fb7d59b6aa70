"""Downloading an image URL within bounds: public addresses only, one total time limit, a size cap.

- Every address the host resolves to must be public, unless private hosts are
  allowed: loopback, private, link-local, multicast, reserved and unspecified
  addresses are refused, IPv6 forms that carry an IPv4 address (IPv4-mapped,
  6to4, NAT64, Teredo) are judged by that address, and integer or octal hosts
  (``http://2130706433/``) resolve like any other and are judged the same way.
- The connection goes to the very address that was checked (no second DNS
  lookup that a rebinding server could answer differently); HTTPS still
  verifies the certificate for the host name.
- Redirects (at most 5) only to http(s), each target checked again.
- One wall-clock limit for the whole download, redirects included: a server
  that sends a byte a second is cut off at it (the socket is shut down), and
  cancelling the request (:mod:`msrkit.runtime.deadline`) cuts it at once.
- At most ``max_bytes`` are read, whatever the headers say.
- Every failure after the address check reads the same to the caller (refused,
  reset, timed out, HTTP 404, not an image, too large): a history's URLs cannot
  be used to scan ports. The detail goes to the debug log.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urljoin, urlsplit

from ..errors import InputError
from ..escape import shown
from ..runtime.deadline import Deadline, current

__all__ = ["fetch_url", "is_public", "unusable"]

log = logging.getLogger("msrkit")

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="msrkit-resolve")


class _Failed(Exception):
    """A download failed after the address check (detail for the debug log only)."""


def is_public(address: str) -> bool:
    """Whether an IP address (text) is a public unicast one (see the module docstring)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        carried = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if carried is None and ip in _NAT64:
            carried = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if carried is not None:
            return is_public(str(carried))
    bad = ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
    return ip.is_global and not (bad or ip.is_unspecified)


def unusable(url: str) -> InputError:
    """The one error of every failed download (and of downloaded bytes that are no usable image)."""
    return InputError(f"image URL {shown(url)} could not be fetched as an image")


def _resolve(host: str, port: int, limit: Deadline) -> list[str]:
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=max(limit.left(), 0.001))
    except FutureTimeout:
        raise _Failed(f"resolving {host} took too long") from None
    except (OSError, UnicodeError) as exc:
        raise _Failed(f"cannot resolve {host}: {exc}") from None
    return [str(info[4][0]) for info in infos]


def _checked(url: str, host: str, port: int, limit: Deadline, private_hosts: bool) -> str:
    """The address to connect to; an :class:`InputError` when the host resolves to a non-public one."""
    addresses = _resolve(host, port, limit)
    if not addresses:
        raise _Failed(f"{host} has no address")
    if not private_hosts:
        refused = next((a for a in addresses if not is_public(a)), None)
        if refused is not None:
            raise InputError(
                f"image URL {shown(url)} points to a non-public address ({refused}: loopback, private, link-local "
                "or reserved): not fetched (the setting image_private_hosts = true allows it)"
            )
    return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to a checked ``address``, the host name kept for the ``Host`` header (and TLS)."""

    address = ""
    #: the TCP socket, kept even after http.client hands it to the response (``sock`` is then ``None``)
    tcp: socket.socket | None = None

    def connect(self) -> None:
        self.sock = self.tcp = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection, _PinnedHTTP):
    """HTTPS to a checked address: ``HTTPSConnection.connect`` wraps the pinned socket, verifying the host name."""


def _connection(https: bool, host: str, port: int, address: str, timeout: float) -> _PinnedHTTP:
    conn: _PinnedHTTP
    if https:
        conn = _PinnedHTTPS(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = _PinnedHTTP(host, port, timeout=timeout)
    conn.address = address
    return conn


@contextlib.contextmanager
def _cut_off_at(conn: _PinnedHTTP, limit: Deadline) -> Iterator[None]:
    """Within the block, shut the connection's socket down when ``limit`` ends or is cancelled."""

    def cut() -> None:
        sock = conn.tcp
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(limit.left(), cut)
    timer.daemon = True
    with limit.watch(cut):
        timer.start()
        try:
            yield
        finally:
            timer.cancel()


def _get(url: str, address: str, limit: Deadline, max_bytes: int) -> tuple[str | None, bytes]:
    """One GET: ``(redirect target, b"")`` or ``(None, body)``."""
    parts = urlsplit(url)
    https = parts.scheme.lower() == "https"
    port = parts.port or (443 if https else 80)
    conn = _connection(https, parts.hostname or "", port, address, max(limit.left(), 0.001))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        with _cut_off_at(conn, limit):
            conn.request("GET", path, headers={"User-Agent": "msrkit", "Accept": "image/*"})
            resp = conn.getresponse()
            if resp.status in _REDIRECTS:
                return resp.getheader("Location") or "", b""
            _check_headers(resp, max_bytes)
            data = resp.read(max_bytes + 1)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _Failed(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
    if limit.expired:
        raise _Failed("cut off at the time limit")
    if len(data) > max_bytes:
        raise _Failed(f"over the {max_bytes}-byte cap")
    return None, data


def _check_headers(resp: http.client.HTTPResponse, max_bytes: int) -> None:
    if resp.status != 200:
        raise _Failed(f"HTTP {resp.status}")
    ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
    if ctype and not ctype.startswith("image/") and ctype != "application/octet-stream":
        raise _Failed(f"content type {ctype}")
    length = resp.getheader("Content-Length") or ""
    if length.isdigit() and int(length) > max_bytes:
        raise _Failed(f"{length} bytes, over the {max_bytes}-byte cap")


def fetch_url(url: str, *, timeout: float, max_bytes: int, private_hosts: bool = False) -> bytes:
    """The body of an image URL (see the module docstring); an :class:`InputError` naming the URL if it fails."""
    limit = current().child(timeout)
    target = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(target)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise InputError(f"image URL {shown(url)} redirects to a URL that is not http(s): not followed")
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
            address = _checked(url, parts.hostname, port, limit, private_hosts)
            location, data = _get(target, address, limit, max_bytes)
            if location is None:
                return data
            target = urljoin(target, location)
        raise _Failed(f"more than {MAX_REDIRECTS} redirects")
    except (_Failed, ValueError) as exc:  # ValueError: a malformed port in a redirect target
        log.debug("image URL %s: %s", shown(url), exc)
        raise unusable(url) from None
