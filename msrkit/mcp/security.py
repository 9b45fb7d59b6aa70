"""The MCP server's exposure: who may call it over HTTP, and what its errors may tell a client.

Over streamable HTTP the SDK's own guards do the checking (``mcp`` >= 2):

- :class:`~mcp.server.transport_security.TransportSecuritySettings`, always on (the SDK turns it
  on by itself only for ``127.0.0.1``, ``localhost`` and ``::1``): a ``Host`` header outside the
  allow-list is refused with 421, an ``Origin`` outside it with 403 (DNS rebinding, a web page
  calling the server from a browser);
- a bearer token (``--token`` / ``mcp_token``) checked by the SDK's auth middleware through
  :class:`BearerToken` (a missing or wrong ``Authorization: Bearer`` header is 401).

:func:`check_exposure` refuses to serve beyond loopback without a token unless
``--allow-unauthenticated`` says so. :func:`client_message` takes server paths and network
addresses out of an error before a client sees it.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from collections.abc import Sequence

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings

from ..errors import ConfigError

__all__ = ["BearerToken", "auth_settings", "check_exposure", "client_message", "is_loopback", "transport_security"]

log = logging.getLogger("msrkit")

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
#: what the SDK keeps of an accepted token (the value itself is never kept past the check)
REDACTED = "[redacted]"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, *, token: str | None, allow_unauthenticated: bool) -> None:
    """Refuse to serve HTTP beyond loopback with no token, unless explicitly allowed (a warning then)."""
    if is_loopback(host) or token:
        return
    if not allow_unauthenticated:
        raise ConfigError(
            f"refusing to serve MCP on {host} (beyond loopback) without authentication: give --token "
            "(or mcp_token / MSRKIT_MCP_TOKEN), or --allow-unauthenticated to serve anyone who can reach it"
        )
    log.warning("serving MCP on %s without authentication: anyone who can reach it may call every tool", host)


def _bound_name(host: str) -> str | None:
    """The ``Host`` header name of a specific bind address (none for the wildcards ``0.0.0.0`` and ``::``)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower()
    if ip.is_unspecified:
        return None
    return f"[{ip}]" if ip.version == 6 else str(ip)


def transport_security(
    host: str, *, hosts: Sequence[str] = (), origins: Sequence[str] = ()
) -> TransportSecuritySettings:
    """The Host and Origin allow-lists for a server bound to ``host``.

    Hosts: the loopback names, the bound address (unless a wildcard) and ``hosts`` (``name`` for
    any port, or ``name:port``). Origins: ``http(s)://`` each of those hosts, and ``origins``.
    A request without ``Origin`` (not from a browser) passes the origin check.
    """
    names = [*LOOPBACK_NAMES, *filter(None, [_bound_name(host)]), *hosts]
    allowed_hosts = list(dict.fromkeys(form for n in names for form in _forms(n)))
    allowed_origins = [f"{scheme}://{h}" for h in allowed_hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts,
                                     allowed_origins=[*allowed_origins, *origins])  # fmt: skip


def _forms(name: str) -> list[str]:
    """``name`` as ``Host`` patterns: itself (a default port) and with any port, unless it names one."""
    name = name.strip().lower()
    if not name.startswith("[") and name.count(":") > 1:
        name = f"[{name}]"  # a bare IPv6 address
    has_port = "]:" in name if name.startswith("[") else ":" in name
    return [name] if has_port else [name, f"{name}:*"]


class BearerToken:
    """The SDK's ``TokenVerifier`` for one shared secret (compared in constant time)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8")

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self._token):
            return AccessToken(token=REDACTED, client_id="msrkit-mcp-client", scopes=[])
        return None


def auth_settings(host: str, port: int) -> AuthSettings:
    """The SDK's auth settings for a bearer-token resource server (no OAuth routes, no metadata)."""
    name = _bound_name(host) or "localhost"
    return AuthSettings(issuer_url=f"http://{name}:{port}", resource_server_url=None)  # type: ignore[arg-type]


_PATH = re.compile(r"(?:(?<=^)|(?<=[\s'\"(=\[,]))(?:~|[A-Za-z]:)?[/\\](?![/\\])[^\s'\"),\]]*")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_IPV6 = re.compile(r"(?<![\w:])\[?(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}\]?(?![\w:])")


def client_message(text: str) -> str:
    """``text`` fit for a remote client: file paths become ``<path>``, IP addresses ``<address>``."""
    text = _PATH.sub("<path>", text)
    for pattern in (_IPV4, _IPV6):
        text = pattern.sub(_address, text)
    return text


def _address(match: re.Match[str]) -> str:
    try:
        ipaddress.ip_address(match.group().strip("[]"))
    except ValueError:
        return match.group()
    return "<address>"
