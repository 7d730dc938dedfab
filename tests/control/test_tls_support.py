# -*- test-case-name: tests.control.test_tls -*-
"""
Test helpers for the control plane's TLS and AMP tests: a certificate
authority made at test time with L{roaming.control.pki}, and in-memory TLS
connections through L{twisted.test.iosim} and
L{twisted.protocols.tls.TLSMemoryBIOFactory}.

The certificates are made relative to the real clock, because OpenSSL checks
validity against it.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import attrs
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test import iosim

from roaming.control import pki
from roaming.control.tls import ClientTLS, NodeCredentials, ServerTLS

__all__ = ["LogCapture", "TestAuthority", "connect_in_memory", "utc_now"]


def utc_now() -> datetime.datetime:
    """
    Return the current time, timezone-aware.
    """
    return datetime.datetime.now(datetime.UTC)


@attrs.define
class TestAuthority:
    """
    A CA made at test time that issues node credentials.
    """

    __test__ = False

    certificate: object
    key: object

    @classmethod
    def create(cls, name: str = "test CA") -> TestAuthority:
        certificate, key = pki.create_ca(name, now=utc_now() - datetime.timedelta(days=30))
        return cls(certificate, key)

    def node(
        self,
        ips: Sequence[str] = (),
        dns: Sequence[str] = (),
        *,
        name: str = "node",
        days: int = 30,
        not_before: datetime.datetime | None = None,
    ) -> NodeCredentials:
        """
        Issue credentials for a node; by default valid from a day ago.
        """
        now = utc_now()
        if not_before is None:
            not_before = now - datetime.timedelta(days=1)
        certificate, key = pki.issue_certificate(
            self.certificate,
            self.key,
            name,
            now=now,
            ip_addresses=ips,
            dns_names=dns,
            days=days,
            not_before=not_before,
        )
        return NodeCredentials(certificate, key, self.certificate)


@attrs.define
class LogCapture:
    """
    A logger whose events are kept in a list.
    """

    events: list[dict] = attrs.field(factory=list)

    @property
    def logger(self) -> Logger:
        return Logger(namespace="test", observer=self.events.append)

    def reasons(self) -> list[str]:
        """
        Return the C{reason} field of every event that has one.
        """
        return [event["reason"] for event in self.events if "reason" in event]


def connect_in_memory(
    server_factory,
    client_factory,
    server_tls: ServerTLS,
    client_tls: ClientTLS,
    *,
    server_address: str = "10.0.0.1",
    client_address: str = "10.0.1.2",
    clock: Clock | None = None,
    flush: bool = True,
):
    """
    Connect a client and a server protocol through TLS over an iosim pump.

    @return: C{(server_tls_protocol, client_tls_protocol, pump)}; the
        application protocols are their C{wrappedProtocol}.
    """
    clock = clock if clock is not None else Clock()
    server_host = IPv4Address("TCP", server_address, 4433)
    client_host = IPv4Address("TCP", client_address, 40001)
    server_wrapper = TLSMemoryBIOFactory(server_tls, False, server_factory, clock=clock)
    client_wrapper = TLSMemoryBIOFactory(client_tls, True, client_factory, clock=clock)
    server_protocol = server_wrapper.buildProtocol(client_host)
    client_protocol = client_wrapper.buildProtocol(server_host)
    server_transport = iosim.FakeTransport(
        server_protocol, True, hostAddress=server_host, peerAddress=client_host
    )
    client_transport = iosim.FakeTransport(
        client_protocol, False, hostAddress=client_host, peerAddress=server_host
    )
    pump = iosim.connect(
        server_protocol,
        server_transport,
        client_protocol,
        client_transport,
        greet=flush,
        clock=clock,
    )
    return server_protocol, client_protocol, pump
