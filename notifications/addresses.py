"""Where a webhook may go: the guard against server-side request forgery.

A webhook URL is chosen by a customer, and the worker that calls it sits
inside the merchant's network. So only http(s) URLs are accepted, and only
global addresses are connected to: not loopback, private (RFC 1918),
unique-local, link-local (169.254.169.254 is the cloud metadata service),
multicast, unspecified, shared (100.64/10), reserved or documentation ranges,
nor IPv4 addresses hidden in IPv6 (::ffff:10.0.0.1). The name is resolved
here and the delivery connects to the address that was checked (the caller
puts it in the URL and keeps the name for Host and TLS), so DNS cannot answer
one address to the check and another to the connection (rebinding).
Redirects are never followed (workers/webhooks.py). ``allow_private`` lifts
the address rules (tests, closed networks): never the scheme rules.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Longest URL accepted, characters.
MAX_URL_LENGTH = 2048
#: How long a name may take to resolve, seconds.
RESOLVE_TIMEOUT_S = 5.0


class UrlRefused(ValueError):
    """Raised when a webhook URL, or the address its name resolves to, may not be used."""


class Unresolvable(UrlRefused):
    """Raised when a URL's name does not resolve (now)."""


@dataclass(frozen=True)
class Target:
    """Where one delivery connects: the checked address, and the name for
    the Host header and TLS (SNI and certificate check)."""

    scheme: str
    host: str
    port: int
    address: str
    path: str

    @property
    def url(self) -> str:
        """The URL with the checked address in place of the name."""
        ip = ipaddress.ip_address(self.address)
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def parse(url: str) -> tuple[str, str, int, str]:
    """Checks a URL's form: (scheme, host, port, path with query)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"the URL must be 1-{MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise UrlRefused("the URL must not contain spaces or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRefused("only http and https URLs are accepted")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("credentials in the URL are not accepted (the signature authenticates us)")
    if parts.fragment:
        raise UrlRefused("the URL must not have a fragment")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UrlRefused("the URL has no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise UrlRefused("the URL's port is not valid") from exc
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port, path


def refusal(address: str) -> str | None:
    """Why an address may not be connected to, or None when it is global."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.version == 6 and ip.sixtofour is not None:
        ip = ip.sixtofour
    checks = (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
              ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
              ("private", ip.is_private), ("reserved", ip.is_reserved))
    for name, hit in checks:
        if hit:
            return f"{ip} is {name}"
    if not ip.is_global:
        return f"{ip} is not a global address"
    return None


async def resolve(host: str, port: int) -> list[str]:
    """The addresses a name resolves to (an IP literal: itself)."""
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP),
            RESOLVE_TIMEOUT_S)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"{host} does not resolve") from exc
    except TimeoutError as exc:
        raise Unresolvable(f"{host} did not resolve within {RESOLVE_TIMEOUT_S:g} s") from exc
    addresses = []
    for info in infos:
        address = info[4][0]
        if address not in addresses:
            addresses.append(address)
    return addresses


async def target(url: str, *, allow_private: bool) -> Target:
    """Resolves a URL and picks the address to connect to. Every address the
    name has must be allowed (one bad answer refuses the URL), so an attacker
    cannot win by racing answers."""
    scheme, host, port, path = parse(url)
    addresses = await resolve(host, port)
    if not addresses:
        raise UrlRefused(f"{host} has no address")
    if not allow_private:
        for address in addresses:
            if (why := refusal(address)) is not None:
                raise UrlRefused(f"{host} resolves to a forbidden address: {why}")
    return Target(scheme=scheme, host=host, port=port, address=addresses[0], path=path)


async def check_url(url: str, *, allow_private: bool) -> None:
    """The check made when an endpoint is created or changed: the URL's form,
    an IP literal's range, and a name's addresses when it resolves now (a
    name that does not resolve yet is accepted: every delivery checks again)."""
    try:
        await target(url, allow_private=allow_private)
    except Unresolvable:
        return
