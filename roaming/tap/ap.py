# -*- test-case-name: tests.daemons.test_services -*-
"""
C{twistd roaming-ap}: the access point daemon.

An AP runs one bridge per VLAN. Each bridge has the wired uplink of its
VLAN and the radio ports of the VSCs on that VLAN (a packet socket on the
interface that carries the stations' frames); the VLAN 0 bridge also has
the AP's own address on a TAP port and a GRE port whose one member is the
tunnel to the AP's SC. The L3 knowledge of the VLAN 0 bridge is preset
with one negative entry per subnet of VLAN 0 pointing at that tunnel, so a
station from any other subnet is tunnelled to the SC from its first frame,
even before the control connection is up. The other VLANs' bridges have no
tunnel, so their stations are bridged locally.

The radio (L{roaming.radio}) reports associations; the control plane
(L{roaming.control.ap.AccessPoint}) turns them, and the addresses the
bridge learns, into messages to the SC and bridge changes. The AP also
sends the layer 2 update frame (L{roaming.tap.lan}) and the IEEE 802.11F
ADD-notify (L{roaming.control.iapp_udp}) on its LAN.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.python import usage
from zope.interface import implementer

from roaming.bridge import AddressLearned, RoamerDetected, ap_entries
from roaming.control import actions
from roaming.control.ap import AccessPoint
from roaming.control.iapp_udp import IappMulticastProtocol, listen_iapp
from roaming.control.service import AccessPointBinding
from roaming.radio import IStationListener
from roaming.radio.hostapd import ControlState
from roaming.tap.control import ControlRuntime
from roaming.tap.lan import build_layer2_update
from roaming.tap.service import NodeOptions, NodeService, connection_settings

__all__ = ["APService", "Options", "makeService"]


class Options(NodeOptions):
    """
    Command line of C{twistd roaming-ap}.
    """

    role = "ap"
    synopsis = "--config FILE"
    longdesc = "Run a roaming access point. Every setting is in the configuration file."


@implementer(IStationListener)
class _RadioListener:
    """
    Station events of one radio interface, for the VSC it carries.
    """

    def __init__(self, service: APService, vsc: Any) -> None:
        self._service = service
        self._vsc = vsc

    def station_connected(self, mac: bytes) -> None:
        self._service.station_connected(mac, self._vsc)

    def station_disconnected(self, mac: bytes) -> None:
        self._service.station_disconnected(mac)


class APService(NodeService):
    """
    A running access point.
    """

    peer_kinds = ("sc",)
    client_columns = ("mac", "ip", "prefix", "vlan", "vsc", "state", "ip_confirmed")

    def __init__(self, config: Any, credentials: Any, **kwargs: Any) -> None:
        super().__init__(config, credentials, **kwargs)
        self.access_point: AccessPoint | None = None
        self.radios: list[Any] = []
        self.iapp: IappMulticastProtocol | None = None
        self._iapp_port: Any = None
        self._radio_ports: dict[str, tuple[int, int]] = {}
        self.datapath.event_listeners.append(self._bridge_event)

    def start_role(self) -> None:
        """
        Attach a radio port per radio interface, preset the L3 knowledge,
        join the IAPP group and start the radios.
        """
        config = self.config
        for vsc in config.vscs:
            if vsc.interface in self._radio_ports:
                continue
            self.devices.isolate_port(vsc.interface)
            port = self.devices.packet_port(vsc.interface)
            # NOTE: vsc.access_controlled is not enforced. The bridge's
            # access-controlled ports drop every station that no one
            # authorised, and the daemon has no authentication source yet.
            # Without L3 mobility the bridge learns the VSC's stations by MAC
            # address only, so none is ever steered to a home subnet.
            number = self.datapath.attach_radio(vsc.vlan, port, l3_learning=vsc.l3_mobility)
            self._radio_ports[vsc.interface] = (vsc.vlan, number)

        controller = config.control.controller
        gre_port, agg_id = self.datapath.tunnel_up(controller)
        for vlan in config.vlans:
            subnets = config.subnets_on_vlan(vlan)
            if subnets and vlan == 0:
                self.datapath.set_l3_entries(vlan, ap_entries(subnets, gre_port, agg_id))

        # The node's address is on its TAP interface, which the bridge
        # connects to the LAN; binding the socket to it keeps out the IAPP
        # packets of other LANs on this host.
        self.iapp = IappMulticastProtocol(
            str(config.node.address), on_add_notify=self._add_notify_heard
        )
        self._iapp_port = listen_iapp(self.reactor, self.iapp, device=config.node.interface)

    def build_control(self) -> ControlRuntime:
        """
        Create the AP role, its radios and the connection to its SC.
        """
        config = self.config
        self.access_point = AccessPoint(
            config.node.address,
            config.control.controller,
            [subnet.network for subnet in config.subnets],
            # VLAN 0 (untagged) is not a VLAN ID on the wire (IEEE 802.1Q).
            vlans=[vlan for vlan in config.vlans if vlan != 0],
        )
        runtime = ControlRuntime(
            address=config.node.address,
            binding=AccessPointBinding(self.access_point),
            credentials=self.credentials,
            port=config.control.port,
            settings=connection_settings(config),
            reconnect_initial=config.control.reconnect_initial,
            reconnect_max=config.control.reconnect_max,
            reactor=self.reactor,
            datapath=self.datapath,
            stages=self.stages,
            lan_actions=self._lan_action,
            listen=False,
        )
        self._start_radios(runtime)
        return runtime

    def _start_radios(self, runtime: ControlRuntime) -> None:
        radio = self.config.radio
        seen = set()
        for vsc in self.config.vscs:
            if vsc.interface in seen:
                continue
            seen.add(vsc.interface)
            if radio.kind == "hostapd":
                control_path = str(radio.control / vsc.interface)
            else:
                control_path = str(radio.control)
            service = self.devices.radio(
                radio.kind, _RadioListener(self, vsc), vsc.interface, control_path
            )
            # The radios stop with the control plane, before the data path.
            service.setServiceParent(runtime)
            self.radios.append(service)

    def after_start(self) -> None:
        """
        Dial the SC.
        """
        self.control.connect(self.config.control.controller)

    def stop_role(self) -> None:
        """
        Leave the IAPP group.
        """
        port, self._iapp_port = self._iapp_port, None
        if port is not None:
            port.stopListening()

    # Radio events

    def station_connected(self, mac: bytes, vsc: Any) -> None:
        """
        Process an association reported by the radio of C{vsc}.
        """
        self.stages.emit("station-connected", mac, vsc=vsc.id, vlan=vsc.vlan)
        vlan, number = self._radio_ports[vsc.interface]
        self.datapath.station_ports[mac] = (vlan, number)
        self.datapath.watch_first_frame(mac, vlan)
        if not vsc.l3_mobility:
            return
        now = self.reactor.seconds()
        self.control.run(
            self.access_point.station_associated(mac, now, vap_id=vsc.id, vlan_id=vsc.vlan)
        )

    def station_disconnected(self, mac: bytes) -> None:
        """
        Process a disassociation.
        """
        self.datapath.station_ports.pop(mac, None)
        self.control.run(self.access_point.station_disassociated(mac, self.reactor.seconds()))

    def _bridge_event(self, event: Any, vlan: int) -> None:
        if not isinstance(event, AddressLearned | RoamerDetected):
            return
        if self.access_point is None or event.mac not in self.access_point.stations:
            return
        ip = ipaddress.IPv4Address(event.ip)
        self.control.run(self.access_point.client_ip_seen(event.mac, ip, self.reactor.seconds()))

    def _add_notify_heard(self, mac: bytes, sender: ipaddress.IPv4Address) -> None:
        now = self.reactor.seconds()
        self.control.run(self.access_point.iapp_add_notify_received(mac, sender, now))

    # Control plane

    def _lan_action(self, action: actions.Action) -> bool:
        if isinstance(action, actions.SendLayer2Update):
            unit = self.datapath.units.get(action.vlan_id) or self.datapath.units[0]
            lan = unit.dispatcher.ports()[unit.ports["lan"]]
            lan.send_frame(build_layer2_update(action.mac))
        elif isinstance(action, actions.SendIappAddNotify):
            if self.iapp is not None and self.iapp.transport is not None:
                self.iapp.send(action.mac)
        elif isinstance(action, actions.RemoveStation):
            # NOTE: the radio interface has no call to disassociate a
            # station, so the station stays associated until the radio
            # reports it gone; only the daemon's own records are dropped.
            self.datapath.station_ports.pop(action.mac, None)
            self.log.info("Station {mac} moved away", mac=action.mac.hex(":"))
        else:
            return False
        return True

    def status_rows(self) -> list[tuple[str, Any]]:
        """
        Report the controller and the station counts.
        """
        access_point = self.access_point
        if access_point is None:
            return []
        return [
            ("controller", str(access_point.controller)),
            ("controller_up", access_point.connected),
            ("stations", len(access_point.stations)),
            ("visitors", len(access_point.visitors)),
            ("travelers", len(access_point.travelers)),
            ("radio", self.config.radio.kind),
            ("radios_attached", f"{self._radios_attached()}/{len(self.radios)}"),
        ]

    def _radios_attached(self) -> int:
        # A radio without an attachment state (a test fake) counts as detached.
        return sum(
            1 for radio in self.radios if getattr(radio, "state", None) is ControlState.ATTACHED
        )

    def client_rows(self) -> list[tuple]:
        """
        List the associated stations and the travelers tunnelled for others.
        """
        access_point = self.access_point
        if access_point is None:
            return []
        rows = []
        for mac, station in access_point.stations.items():
            state = "visitor" if mac in access_point.visitors else "local"
            rows.append(
                (
                    mac.hex(":"),
                    None if station.ip is None else str(station.ip),
                    station.prefix,
                    station.vlan_id,
                    station.vap_id,
                    state,
                    station.ip_confirmed,
                )
            )
        for mac, vlan in access_point.travelers.items():
            rows.append((mac.hex(":"), None, None, vlan, None, "traveler", None))
        return rows


def makeService(options: usage.Options) -> APService:
    """
    Build the AP service from parsed L{Options}.
    """
    return APService(options["config_object"], options["credentials"])
