# -*- test-case-name: tests.control.test_wire_sockets -*-
"""
Control connections over real TLS sockets on loopback addresses: an AP
registers with an SC through L{ControlService}, and peers with a foreign
CA, an expired certificate or the wrong identity are rejected with a log
line naming the reason.

The AP connects from 127.0.0.2 so that the SC's check of the client's source
address against its certificate runs as in a real network. These tests need
no privileges.
"""

from __future__ import annotations

import datetime
from ipaddress import IPv4Address, IPv4Network

from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from roaming.control.actions import TunnelUp
from roaming.control.ap import AccessPoint
from roaming.control.clientdb import ClientDatabase
from roaming.control.sc import ServiceController
from roaming.control.service import (
    AccessPointBinding,
    ControlNode,
    ControlService,
    ServiceControllerBinding,
)
from roaming.control.tls import server_endpoint
from tests.control.test_tls_support import TestAuthority, utc_now

SC_ADDRESS = "127.0.0.1"
AP_ADDRESS = "127.0.0.2"

# Upper bound on how long a test waits for a condition, in seconds.
WAIT_LIMIT = 10.0


class LoopbackControlTests(unittest.TestCase):
    """
    An SC and an AP service on loopback addresses.
    """

    timeout = 30

    def setUp(self) -> None:
        self.authority = TestAuthority.create()
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.sc_actions: list = []
        self.ap_actions: list = []

    @inlineCallbacks
    def start_sc(self, credentials):
        controller = ServiceController(
            IPv4Address(SC_ADDRESS), ClientDatabase(":memory:"), primary=IPv4Address(SC_ADDRESS)
        )
        node = ControlNode(
            ServiceControllerBinding(controller), clock=reactor, data_plane=self.sc_actions.append
        )
        service = ControlService(
            node,
            credentials,
            reactor=reactor,
            listen_endpoint=lambda tls: server_endpoint(reactor, tls, 0, SC_ADDRESS),
        )
        service.startService()
        self.addCleanup(service.stopService)
        port = yield service.listening
        self.sc_controller = controller
        return port.getHost().port

    def start_ap(self, credentials, port: int) -> ControlService:
        access_point = AccessPoint(
            IPv4Address(AP_ADDRESS), IPv4Address(SC_ADDRESS), [IPv4Network("10.1.0.0/24")]
        )
        node = ControlNode(
            AccessPointBinding(access_point), clock=reactor, data_plane=self.ap_actions.append
        )
        service = ControlService(
            node, credentials, reactor=reactor, port=port, bind_address=AP_ADDRESS
        )
        service.connect(IPv4Address(SC_ADDRESS))
        service.startService()
        self.addCleanup(service.stopService)
        return service

    @inlineCallbacks
    def wait_for(self, condition, what: str):
        steps = int(WAIT_LIMIT / 0.05)
        for _ in range(steps):
            if condition():
                return
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.fail(f"timed out after {WAIT_LIMIT} s waiting for {what}")

    def tls_reasons(self) -> list[str]:
        return [
            event["reason"]
            for event in self.events
            if event.get("log_namespace", "").startswith("roaming.control.tls")
            and "reason" in event
        ]

    @inlineCallbacks
    def test_ap_registers(self):
        """
        The AP connects, both sides verify each other, and the SC registers
        the AP and brings the tunnel up.
        """
        port = yield self.start_sc(self.authority.node([SC_ADDRESS]))
        self.start_ap(self.authority.node([AP_ADDRESS]), port)
        yield self.wait_for(
            lambda: TunnelUp(IPv4Address(AP_ADDRESS)) in self.sc_actions, "the AP's registration"
        )
        self.assertEqual(
            self.sc_controller.aps.subnets_of(IPv4Address(AP_ADDRESS)),
            (IPv4Network("10.1.0.0/24"),),
        )
        self.assertIn(TunnelUp(IPv4Address(SC_ADDRESS)), self.ap_actions)
        self.assertEqual(self.tls_reasons(), [])

    @inlineCallbacks
    def check_rejection(self, sc_credentials, ap_credentials, reason: str):
        port = yield self.start_sc(sc_credentials)
        self.start_ap(ap_credentials, port)
        yield self.wait_for(lambda: reason in self.tls_reasons(), f"a {reason} rejection")
        self.assertNotIn(TunnelUp(IPv4Address(AP_ADDRESS)), self.sc_actions)

    def test_foreign_ca_rejected(self):
        """
        An AP certificate from another CA is rejected as untrusted-ca.
        """
        other = TestAuthority.create("other CA")
        ap_credentials = other.node([AP_ADDRESS])
        return self.check_rejection(
            self.authority.node([SC_ADDRESS]), ap_credentials, "untrusted-ca"
        )

    def test_expired_certificate_rejected(self):
        """
        An expired AP certificate is rejected as expired.
        """
        expired = self.authority.node(
            [AP_ADDRESS], days=1, not_before=utc_now() - datetime.timedelta(days=3)
        )
        return self.check_rejection(self.authority.node([SC_ADDRESS]), expired, "expired")

    def test_wrong_server_identity_rejected(self):
        """
        An SC whose certificate names another address is rejected by the AP
        as wrong-identity.
        """
        return self.check_rejection(
            self.authority.node(["127.0.0.9"]),
            self.authority.node([AP_ADDRESS]),
            "wrong-identity",
        )

    def test_wrong_client_source_rejected(self):
        """
        An AP whose certificate does not name its source address is rejected
        by the SC as wrong-identity.
        """
        return self.check_rejection(
            self.authority.node([SC_ADDRESS]),
            self.authority.node(["127.0.0.3"]),
            "wrong-identity",
        )
