"""Which IP addresses outgoing fetches may connect to, and connecting only to those.

An :class:`AddressPolicy` denies, by default, every address that is not
on the public Internet: loopback, link-local (cloud metadata services
included), private and shared (CGNAT) ranges, unspecified, multicast,
reserved and documentation ranges, the local-use NAT64 prefix
``64:ff9b:1::/48`` (RFC 8215, whatever IPv4 address it carries), and the
IPv6 forms that embed such an IPv4 address (IPv4-mapped, IPv4-compatible,
NAT64, 6to4).  An allow list opens chosen networks (tests allow loopback);
a deny list closes more.
Link-local addresses (and the cloud metadata and unspecified addresses)
stay denied unless an allowed network lies inside their range itself, so a
broad allow such as ``0.0.0.0/0`` never opens the metadata service.

:func:`connect` resolves a host name once, checks every address it got,
and connects to a checked address: the address connected to is the one
checked, so a second DNS answer cannot slip in between (no DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Ranges that only an allowed network inside them opens, never a broader one.
_STICKY: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(cidr) for cidr in (
    "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "0.0.0.0/32", "::/128"))
_METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))

#: Ranges denied by default, each with the words that name it in refusals.
_DENIED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), label) for cidr, label in (
        ("0.0.0.0/32", "an unspecified address"),
        ("0.0.0.0/8", "a 'this network' address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("10.0.0.0/8", "a private address"),
        ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"),
        ("100.64.0.0/10", "a shared (CGNAT) address"),
        ("192.0.0.0/24", "a reserved address"),
        ("192.0.2.0/24", "a documentation address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "a broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("fe80::/10", "a link-local address"),
        ("fc00::/7", "a private (unique local) address"),
        ("fec0::/10", "a private (site-local) address"),
        ("ff00::/8", "a multicast address"),
        ("100::/64", "a reserved (discard) address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("2001:db8::/32", "a documentation address"),
    ))

#: IPv6 ranges that carry an IPv4 address in their last 32 bits.
_EMBEDDING_V4 = (ipaddress.ip_network("::ffff:0:0/96"),  # IPv4-mapped
                 ipaddress.ip_network("::ffff:0:0:0/96"),  # IPv4-translated
                 ipaddress.ip_network("64:ff9b::/96"),  # NAT64
                 ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64
                 ipaddress.ip_network("::/96"))  # IPv4-compatible (deprecated)


class RefusedError(Exception):
    """A connection the address policy does not allow; the message says why."""


def parse_address(text: str) -> IPAddress:
    """An IP address from its text, without any IPv6 zone (``fe80::1%eth0``).

    Raises
    ------
    ValueError
        When ``text`` is not an IP address.
    """
    return ipaddress.ip_address(text.split("%", 1)[0])


def parse_networks(specs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Networks from CIDR strings (``"127.0.0.0/8"``, ``"::1/128"``, or one address).

    Raises
    ------
    ValueError
        Naming the entry that is not a network.
    """
    networks: list[IPNetwork] = []
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        try:
            networks.append(ipaddress.ip_network(spec, strict=False))
        except ValueError:
            raise ValueError(f"not an IP network: {spec!r} (write e.g. 127.0.0.0/8 or ::1/128)")\
                from None
    return tuple(networks)


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it embeds one."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if int(ip) <= 1:  # :: and ::1 are themselves, not IPv4-compatible forms
        return None
    for network in _EMBEDDING_V4:
        if ip in network:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses outgoing connections may reach.

    Parameters
    ----------
    allow : tuple of networks
        Networks allowed although the default policy denies them (a
        link-local, metadata or unspecified address needs an allowed
        network inside its own range).
    deny : tuple of networks
        Networks denied in addition to the defaults; they win over
        ``allow``.
    """

    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_strings(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> AddressPolicy:
        """A policy from CIDR strings, as configuration gives them.

        Raises
        ------
        ValueError
            For an entry that is not a network.
        """
        return cls(parse_networks(allow), parse_networks(deny))

    def _allowed(self, ip: IPAddress) -> bool:
        sticky = [net for net in _STICKY if net.version == ip.version and ip in net]
        for network in self.allow:
            if network.version != ip.version or ip not in network:
                continue
            if all(network.subnet_of(net) for net in sticky):  # type: ignore[arg-type]
                return True
        return False

    def _listed_deny(self, ip: IPAddress) -> str | None:
        for network in self.deny:
            if network.version == ip.version and ip in network:
                return f"in the denied network {network}"
        return None

    def _label(self, ip: IPAddress) -> str | None:
        """Why ``ip`` itself is denied (ignoring any IPv4 address it embeds), or None."""
        denied = self._listed_deny(ip)
        if denied is not None:
            return denied
        if self._allowed(ip):
            return None
        for network, label in _DENIED:
            if network.version == ip.version and ip in network:
                if ip in _METADATA:
                    return f"{label} (cloud metadata service)"
                return label
        if not ip.is_global:
            return "not a public address"
        return None

    def refusal(self, address: str | IPAddress) -> str | None:
        """Why ``address`` may not be connected to, or None when it may.

        An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) is judged as the
        IPv4 address it maps (the deny list still applies to its IPv6
        form); an address of another range that embeds an IPv4 address
        (NAT64, 6to4, Teredo, IPv4-compatible) is denied when either
        form is.

        Returns
        -------
        str or None
            E.g. ``"169.254.169.254 is a link-local address (cloud metadata
            service)"``.
        """
        ip = parse_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address):
            inner = ip.ipv4_mapped
            if inner is not None:
                label = self._listed_deny(ip) or self._label(inner)
                return None if label is None else f"{ip} is {label} (IPv4-mapped {inner})"
            inner = _embedded_v4(ip)
            if inner is not None:
                label = self._label(inner)
                if label is not None:
                    return f"{ip} is {label} (it embeds the IPv4 address {inner})"
        label = self._label(ip)
        return None if label is None else f"{ip} is {label}"

    def check(self, address: str | IPAddress, host: str | None = None) -> None:
        """Raise :class:`RefusedError` unless ``address`` may be connected to.

        Parameters
        ----------
        address : str or IP address
            The address about to be connected to.
        host : str, optional
            The name it was resolved from, for the message.
        """
        reason = self.refusal(address)
        if reason is not None:
            raise RefusedError(refusal_message(reason, host, address))


def refusal_message(reason: str, host: str | None, address: str | IPAddress) -> str:
    """``"refused: {reason}"``, naming the host name when it is not the address itself."""
    try:
        literal = host is None or parse_address(host.strip("[]")) == (
            parse_address(address) if isinstance(address, str) else address)
    except ValueError:
        literal = False
    if literal:
        return f"refused: {reason}"
    return f"refused: {host} ({reason})"


class ResolveError(OSError):
    """A host name that could not be resolved; ``transient`` when trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def connect(host: str, port: int, policy: AddressPolicy, timeout: float | None) -> socket.socket:
    """Open a TCP connection to ``host``, only ever to an address the policy allows.

    The name is resolved once; every address is checked and only checked
    addresses are connected to, in the resolver's order.  The peer of the
    connected socket is checked once more.

    Parameters
    ----------
    host : str
        Host name or IP literal (IPv6 without brackets).
    port : int
        TCP port.
    policy : AddressPolicy
        Which addresses are allowed.
    timeout : float or None
        Seconds for the connection and, afterwards, for every socket operation.

    Returns
    -------
    socket.socket
        The connected socket.

    Raises
    ------
    RefusedError
        When every address the name resolves to is denied.
    ResolveError
        When the name does not resolve (or is not a valid host name).
    OSError
        When no allowed address accepts the connection (the last error).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        transient = exc.errno in (socket.EAI_AGAIN, getattr(socket, "EAI_SYSTEM", -11))
        raise ResolveError(f"cannot resolve {host!r}: {exc.strerror or exc}",
                           transient=transient) from None
    except (UnicodeError, ValueError) as exc:  # an empty or too long label, a NUL...
        raise ResolveError(f"cannot resolve {host!r}: not a valid host name ({exc})",
                           transient=False) from None
    refusals: list[str] = []
    last_error: OSError | None = None
    for family, socktype, proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        reason = policy.refusal(address)
        if reason is not None:
            refusals.append(reason)
            continue
        sock = socket.socket(family, socktype, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        try:
            policy.check(str(sock.getpeername()[0]), host)
        except BaseException:
            sock.close()
            raise
        return sock
    if last_error is not None:
        raise last_error
    if refusals:
        raise RefusedError(refusal_message(refusals[0], host, str(infos[0][4][0])))
    raise ResolveError(f"cannot resolve {host!r}: no address", transient=False)
