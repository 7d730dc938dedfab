# -*- test-case-name: tests.daemons.test_services -*-
"""
C{twistd roaming-sc}: the service controller daemon.

An SC runs one bridge with its LAN port, its own address on a TAP port,
and two GRE aggregation ports: one whose members are the tunnels to the
APs it controls, one for the tunnels to the other SCs. Its control plane
(L{roaming.control.sc.ServiceController}) keeps the client database in
SQLite, runs discovery (as the primary, or registered with it) and accepts
the connections of its APs and of the other SCs. Discovery brings the
tunnels up and sets the bridge's L3 knowledge: one positive entry per
subnet of every other SC, pointing at the tunnel to that SC.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.python import usage

from roaming.control.clientdb import ClientDatabase
from roaming.control.commands import NodeRole
from roaming.control.sc import ServiceController
from roaming.control.service import ServiceControllerBinding
from roaming.tap.control import ControlRuntime
from roaming.tap.service import NodeOptions, NodeService, connection_settings

__all__ = ["Options", "SCService", "makeService"]


class Options(NodeOptions):
    """
    Command line of C{twistd roaming-sc}.
    """

    role = "sc"
    synopsis = "--config FILE"
    longdesc = "Run a roaming service controller. Every setting is in the configuration file."


class SCService(NodeService):
    """
    A running service controller.
    """

    peer_kinds = ("ap", "sc")
    client_columns = (
        "mac",
        "ip",
        "prefix",
        "vlan",
        "current_ap",
        "home_ap",
        "home_sc",
        "traveler_at",
        "visiting_from",
    )

    def __init__(self, config: Any, credentials: Any, **kwargs: Any) -> None:
        super().__init__(config, credentials, **kwargs)
        self.database: ClientDatabase | None = None
        self.controller: ServiceController | None = None

    def kind_of_peer(self, address: ipaddress.IPv4Address) -> str:
        """
        Return C{"ap"} for an AP registered with this SC, else C{"sc"}.
        """
        if self.controller is not None and address in self.controller.ap_vlans:
            return "ap"
        if self.control is not None:
            peer = self.control.peers.get(address)
            if peer is not None and peer.role == str(NodeRole.AP):
                return "ap"
        return "sc"

    def build_control(self) -> ControlRuntime:
        """
        Open the client database and create the SC role and its connections.
        """
        config = self.config
        database_config = config.database
        self.database = ClientDatabase(
            database_config.path, max_clients=database_config.max_clients
        )
        self.controller = ServiceController(
            config.node.address,
            self.database,
            primary=config.control.primary,
            subnets=[subnet.network for subnet in config.subnets],
            lan_subnets=[config.node.network],
        )
        return ControlRuntime(
            address=config.node.address,
            binding=ServiceControllerBinding(self.controller),
            credentials=self.credentials,
            port=config.control.port,
            settings=connection_settings(config),
            reconnect_initial=config.control.reconnect_initial,
            reconnect_max=config.control.reconnect_max,
            reactor=self.reactor,
            datapath=self.datapath,
            stages=self.stages,
            listen=True,
        )

    def after_start(self) -> None:
        """
        Dial the primary unless this SC is the primary; the control service
        has started discovery already.
        """
        if not self.controller.is_primary:
            self.control.connect(self.config.control.primary)

    def stop_role(self) -> None:
        """
        Close the client database.
        """
        if self.database is not None:
            self.database.close()
            self.database = None

    def status_rows(self) -> list[tuple[str, Any]]:
        """
        Report the primary, discovery state and registered APs.
        """
        controller = self.controller
        if controller is None:
            return []
        return [
            ("primary", str(controller.primary)),
            ("is_primary", controller.is_primary),
            ("discovery", controller.discovery.state.value),
            ("access_points", len(controller.ap_vlans)),
            ("clients", len(self.database) if self.database is not None else 0),
        ]

    def client_rows(self) -> list[tuple]:
        """
        List the client database with traveler and visitor marks.
        """
        if self.database is None:
            return []
        database = self.database

        def text(value: Any) -> str | None:
            return None if value is None else str(value)

        rows = []
        for record in database.clients():
            traveler = database.get_traveler(record.mac)
            visitor = database.get_visitor(record.mac)
            rows.append(
                (
                    record.mac.hex(":"),
                    text(record.ip),
                    record.prefix,
                    record.vlan_id,
                    text(record.current_ap),
                    text(record.home_ap),
                    text(record.home_sc),
                    text(traveler.foreign_sc) if traveler is not None else None,
                    text(visitor.home_sc) if visitor is not None else None,
                )
            )
        return rows


def makeService(options: usage.Options) -> SCService:
    """
    Build the SC service from parsed L{Options}.
    """
    return SCService(options["config_object"], options["credentials"])
