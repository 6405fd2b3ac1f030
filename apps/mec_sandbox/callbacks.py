"""Which callback URLs the sandbox may POST notifications to, and which address it listens on.

A subscription names a URL the sandbox will POST to: without a limit, anyone who reaches the API can
make the sandbox send requests anywhere its network reaches. Callback targets are therefore limited
to configured networks (CIDRs): a URL whose host is an address outside them, or a name that resolves
to one, is refused with a 400 naming the allowed networks; and when a notification is delivered the
name is resolved again and only addresses inside the networks are used (a name that changed its
answer since the subscription gets nothing).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

from .problems import Problem

LOOPBACK = ("127.0.0.0/8", "::1/128")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str | list[str] | tuple[str, ...]) -> list[Network]:
    """'127.0.0.0/8,172.30.77.0/24' (or a list) -> networks; a single address counts as /32 or /128."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"callback network {item!r} is not an address or CIDR (e.g. 172.30.77.0/24)") from None
    return out


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class CallbackPolicy:
    def __init__(self, networks: list[Network]):
        self.networks = list(networks)

    def describe(self) -> str:
        return ", ".join(str(n) for n in self.networks) or "none"

    def allows(self, address: str) -> bool:
        try:
            ip = _address(address)
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in self.networks)

    async def check(self, url: object, field: str) -> str:
        """The URL if notifications may go there; else a 400 Problem that says why."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise Problem(400, f"'{field}' must carry an http(s) URL")
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise Problem(400, f"'{field}': {url!r} is not a valid URL ({exc})") from None
        if not host:
            raise Problem(400, f"'{field}': {url!r} has no host")
        refused = f"'{field}': callbacks may only go to the networks {self.describe()}"
        hint = " (the sandbox's --callback-networks, role variable mec_sandbox_callback_networks)"
        try:
            _address(host)
        except ValueError:  # a name: every address it resolves to must be allowed
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port or 80, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise Problem(400, f"'{field}': host {host!r} does not resolve ({exc})") from None
            outside = sorted({info[4][0] for info in infos if not self.allows(info[4][0])})
            if outside:
                raise Problem(400, f"{refused}; {host} resolves to {', '.join(outside)}{hint}") from None
            return url
        if not self.allows(host):
            raise Problem(400, f"{refused}; {host} is outside them{hint}")
        return url

    def resolver(self) -> AbstractResolver:
        return _AllowedResolver(self)


class _AllowedResolver(AbstractResolver):
    """Resolves names for the notification client, keeping only addresses inside the networks."""

    def __init__(self, policy: CallbackPolicy):
        self.policy = policy
        self.inner = ThreadedResolver()

    async def resolve(self, host, port=0, family=socket.AF_INET):
        found = await self.inner.resolve(host, port, family)
        kept = [r for r in found if self.policy.allows(r["host"])]
        if not kept:
            raise OSError(f"{host} resolves to no address inside the callback networks {self.policy.describe()}")
        return kept

    async def close(self):
        await self.inner.close()


def listen_address(spec: str) -> str:
    """An address to bind to: the address itself, or for a CIDR this machine's address inside it
    (the one the kernel would use to reach that network), e.g. the container's address on a lab network."""
    if "/" not in spec:
        return spec
    net = ipaddress.ip_network(spec, strict=False)
    probe = net.network_address + 1 if net.num_addresses > 2 else net.network_address
    family = socket.AF_INET if net.version == 4 else socket.AF_INET6
    with socket.socket(family, socket.SOCK_DGRAM) as s:  # connecting a UDP socket sends nothing
        try:
            s.connect((str(probe), 9))
            local = s.getsockname()[0]
        except OSError as exc:
            raise ValueError(f"--host {spec}: no route to that network ({exc})") from None
    if _address(local) not in net:
        raise ValueError(f"--host {spec}: this machine has no address in that network (it would use {local})")
    return local
