# -*- test-case-name: tests.daemons.test_services -*-
"""
The data path of one node: its bridges, their ports and its GRE tunnels.

L{NodeDatapath} builds what both daemons share, from a checked
L{roaming.config.Config}:

  - one bridge per VLAN (an SC has only VLAN 0), each bound to its ports
    by a L{roaming.tap.bridging.NodeDispatcher};
  - the wired uplink of every bridge (a packet socket or a TAP), which
    learns by MAC address only because the subnet's router forwards
    packets from every subnet through it;
  - the node's own address on a TAP port of the VLAN 0 bridge, configured
    like the address of C{br0}: the control connections and the GRE
    tunnels of the node pass through its own bridge;
  - GRE aggregation ports on the VLAN 0 bridge, one per kind of peer
    (C{"ap"} and C{"sc"} on an SC, C{"sc"} on an AP), whose members are the
    tunnels to the peers, added and removed as the control plane finds and
    loses them.

The radio ports of an AP and the control plane are added by the daemon
(L{roaming.tap.ap}, L{roaming.tap.sc}). L{NodeDatapath.apply} carries out
the control plane's bridge and tunnel actions.

NOTE: only the VLAN 0 bridge has GRE ports, so on an AP with several VLANs
the stations of the other VLANs are bridged locally and cannot roam across
subnets.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from roaming.bridge import BridgeError, L3Entry
from roaming.config import Config
from roaming.control import actions
from roaming.tap import bridging
from roaming.tap.devices import Devices
from roaming.tap.stages import StageLog
from roaming.tunnel import GreEndpoint, Transport, TunnelDown, TunnelUp

__all__ = ["TUNNEL_KEY", "BridgeUnit", "GrePortUnit", "NamedPort", "NodeDatapath"]

# Every tunnel between roaming nodes uses GRE key 0, so a tunnel is named
# by its remote address alone.
# NOTE: the tunnel engine can carry a VSC id and the access-controlled flag
# in the key (roaming.tunnel.key), with one tunnel per VSC towards a peer.
# The daemons do not use that yet, so all VSCs share the key 0 tunnel and
# broadcasts are not kept within their VSC on the way through it.
TUNNEL_KEY = 0

# How often bridge aging runs, in seconds: an entry lives at most this much
# longer than the aging time.
AGING_INTERVAL = 1.0


class NamedPort:
    """
    A device port shown to the bridge under another name, so that two GRE
    ports bound to the same address stay apart in counters and tables.
    """

    def __init__(self, port: Any, name: str) -> None:
        self.port = port
        self.name = name
        self.aggregation = getattr(port, "aggregation", False)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.port, attribute)

    def start_port(self, sink: Any) -> None:
        """
        Start the wrapped port.
        """
        self.port.start_port(sink)

    def stop_port(self) -> Any:
        """
        Stop the wrapped port.
        """
        return self.port.stop_port()

    def send_frame(self, frame: bytes, agg_id: int | None = None) -> None:
        """
        Send through the wrapped port.
        """
        self.port.send_frame(frame, agg_id)


class BridgeUnit:
    """
    One bridge instance with its dispatcher and its ports by role.

    @ivar ports: bridge port number by role: C{"lan"}, C{"self"},
        C{"gre-ap"}, C{"gre-sc"}, or C{"radio:<interface>"}.
    """

    def __init__(self, vlan: int, bridge: Any, dispatcher: bridging.NodeDispatcher) -> None:
        self.vlan = vlan
        self.bridge = bridge
        self.dispatcher = dispatcher
        self.ports: dict[str, int] = {}

    def port_names(self) -> dict[int, str]:
        """
        Map bridge port numbers to the names of the ports.
        """
        return {number: port.name for number, port in self.dispatcher.ports().items()}


class GrePortUnit:
    """
    One GRE aggregation port: its tunnel engine, device port and bridge
    port.
    """

    def __init__(self, kind: str, engine: GreEndpoint, port: Any) -> None:
        self.kind = kind
        self.engine = engine
        self.port = port
        self.number: int | None = None
        self.tunnels: dict[ipaddress.IPv4Address, int] = {}


class NodeDatapath:
    """
    The bridges, ports and tunnels of one node.

    @param peer_kinds: the kinds of GRE port to create, such as
        C{("ap", "sc")}.
    @param kind_of_peer: returns the kind of a peer address, to choose the
        GRE port of its tunnel.
    @param make_bridge: builds a bridge core for one VLAN.
    """

    log = Logger()

    def __init__(
        self,
        config: Config,
        devices: Devices,
        reactor: Any,
        stages: StageLog,
        *,
        peer_kinds: tuple[str, ...],
        kind_of_peer: Callable[[ipaddress.IPv4Address], str],
        make_bridge: Callable[..., Any] = bridging.make_bridge,
    ) -> None:
        self.config = config
        self.devices = devices
        self.reactor = reactor
        self.stages = stages
        self._peer_kinds = peer_kinds
        self._kind_of_peer = kind_of_peer
        self._make_bridge = make_bridge
        self.units: dict[int, BridgeUnit] = {}
        self.gre: dict[str, GrePortUnit] = {}
        self._agg_ids = itertools.count(1)
        self._started: list[tuple[BridgeUnit, int]] = []
        self._aging: LoopingCall | None = None
        #: Radio port of each associated station, by MAC: (VLAN, port number).
        self.station_ports: dict[bytes, tuple[int, int]] = {}
        # Stations given a static entry to carry a source egress.
        self._source_statics: set[tuple[int, bytes]] = set()
        #: Called with every bridge event, after the stage log.
        self.event_listeners: list[Callable[[Any, int], None]] = []
        #: Static and source entries the bridge rejected (L{BridgeError}).
        self.static_errors = 0

    # Start and stop

    def start(self) -> None:
        """
        Create the bridges and start their wired ports, the own-address TAP
        and the GRE ports, in that order: a GRE socket binds to the node's
        address, which must be on the TAP first.

        @raise Exception: whatever a port or netlink raised; the ports
            started so far are stopped again.
        """
        try:
            for vlan in self.config.vlans:
                self._start_unit(vlan)
            self._start_own_address()
            for kind in self._peer_kinds:
                self._start_gre(kind)
        except BaseException:
            self.stop()
            raise
        self._aging = LoopingCall(self._expire)
        self._aging.clock = self.reactor
        self._aging.start(AGING_INTERVAL, now=False)

    def _start_unit(self, vlan: int) -> None:
        bridge = self._make_bridge(self.config.bridge, vlan=vlan)
        dispatcher = bridging.NodeDispatcher(
            bridge,
            clock=self.reactor,
            on_events=lambda events: self._on_events(events, vlan),
            on_first_frame=lambda mac, port: self.stages.emit(
                "first-frame-back", mac, port=port, vlan=vlan
            ),
        )
        unit = BridgeUnit(vlan, bridge, dispatcher)
        self.units[vlan] = unit
        lan = self.config.lan
        interface = lan.interface_for_vlan(vlan)
        if lan.kind == "tap":
            port = self.devices.tap_port(interface)
        else:
            self.devices.isolate_port(interface)
            port = self.devices.packet_port(interface)
        self._attach(unit, "lan", port, l3_learning=False)
        if lan.kind == "tap":
            self.devices.set_up(interface)

    def _start_own_address(self) -> None:
        node = self.config.node
        unit = self.units[0]
        number = self._attach(
            unit, "self", self.devices.tap_port(node.interface), l3_learning=False
        )
        self.devices.configure_address(node.interface, node.interface_address, node.gateway)
        # The node's own MAC address is always behind its own port, like the
        # permanent local entry of a Linux bridge. A frame from that address
        # arriving through a tunnel (a flood copied back to the node) must
        # not move it, or the node's own traffic would follow it into the
        # tunnel and be encapsulated again on every round.
        unit.bridge.add_static(self.devices.hardware_address(node.interface), number, None)

    def _start_gre(self, kind: str) -> None:
        gre = self.config.gre
        local = str(self.config.node.address)
        transport = Transport.GRE_IN_UDP if gre.transport == "udp" else Transport.RAW_IPV4
        # The engine drops a received inner frame that the bridge would
        # drop as oversized, and counts it as "oversized-frame".
        engine = GreEndpoint(
            local, transport=transport, max_frame_size=self.config.bridge.max_frame_size
        )
        # Two UDP sockets cannot both receive every datagram of one port
        # (SO_REUSEPORT balances them), so an SC's tunnels to other SCs use
        # the next port; APs and SCs agree on that by convention.
        udp_port = gre.udp_port + 1 if kind == "sc" and "ap" in self._peer_kinds else gre.udp_port
        device = self.devices.gre_port(
            gre.transport,
            local,
            engine,
            udp_port,
            on_link_event=lambda event: self._link_event(kind, event),
            ignore_remote=self._remote_filter(kind, gre.transport),
        )
        port = NamedPort(device, f"gre-{kind}")
        unit = GrePortUnit(kind, engine, port)
        self.gre[kind] = unit
        # Split horizon keeps one SC's floods from looping through another
        # SC; between APs the flood policy of the dispatcher does that.
        unit.number = self._attach(
            self.units[0], f"gre-{kind}", port, tunnel=True, split_horizon=kind == "sc"
        )
        dispatcher = self.units[0].dispatcher
        dispatcher.guard(self.units[0].ports["lan"])
        dispatcher.keep_local(self.units[0].ports["self"], self.units[0].ports["lan"])
        # An SC relays floods between its AP tunnels and its SC tunnels: a
        # home AP's broadcasts for its travelers go to the foreign SCs, and
        # what a foreign SC receives goes to its APs, where visitors are.
        if set(self.gre) == {"ap", "sc"}:
            dispatcher.allow_flood(self.gre["ap"].number, self.gre["sc"].number)
            dispatcher.allow_flood(self.gre["sc"].number, self.gre["ap"].number)
            dispatcher.relay(self.gre["ap"].number)

    def _remote_filter(self, kind: str, transport: str) -> Callable[[str], bool] | None:
        """
        Return the filter of the packets that the GRE port of C{kind} leaves
        to the node's other GRE port, or C{None} when it has no other.

        An SC's two raw GRE sockets are bound to one address, so the kernel
        gives each a copy of every GRE packet. Each port ignores the peers
        of the other, whose engine would otherwise count their traffic as
        "unknown-remote". The UDP sockets are bound to two ports and need
        no filter.
        """
        if transport != "ip" or set(self._peer_kinds) != {"ap", "sc"}:
            return None
        other = "sc" if kind == "ap" else "ap"

        def belongs_to_other(remote: str) -> bool:
            unit = self.gre.get(other)
            return unit is not None and unit.engine.lookup(remote, TUNNEL_KEY) is not None

        return belongs_to_other

    def _attach(self, unit: BridgeUnit, role: str, port: Any, **options: Any) -> int:
        number = unit.dispatcher.attach(port, **options)
        unit.ports[role] = number
        self._started.append((unit, number))
        return number

    def attach_radio(self, vlan: int, port: Any, *, l3_learning: bool = True) -> int:
        """
        Start a radio port on the bridge of C{vlan}.
        """
        unit = self.units[vlan]
        return self._attach(unit, f"radio:{port.name}", port, l3_learning=l3_learning)

    def stop(self) -> None:
        """
        Stop aging and every started port, last started first.
        """
        if self._aging is not None and self._aging.running:
            self._aging.stop()
        self._aging = None
        while self._started:
            unit, number = self._started.pop()
            try:
                unit.dispatcher.detach(number)
            except Exception:
                self.log.failure("Stopping bridge port {number} failed", number=number)

    def _expire(self) -> None:
        now = self.reactor.seconds()
        for unit in self.units.values():
            deadline = unit.bridge.next_deadline()
            if deadline is not None and deadline <= now:
                unit.bridge.expire(now)
                self._deliver(unit)

    # Tunnels

    def _gre_for(self, peer: ipaddress.IPv4Address) -> GrePortUnit:
        kind = self._kind_of_peer(peer)
        return self.gre.get(kind) or next(iter(self.gre.values()))

    def tunnel_up(self, peer: ipaddress.IPv4Address) -> tuple[int, int]:
        """
        Add the tunnel to C{peer} (once) and return its egress: the GRE
        port's bridge port number and the tunnel's aggregation ID.
        """
        for unit in self.gre.values():
            agg_id = unit.tunnels.get(peer)
            if agg_id is not None:
                return unit.number, agg_id
        unit = self._gre_for(peer)
        agg_id = next(self._agg_ids)
        gre = self.config.gre
        unit.engine.add_tunnel(
            agg_id,
            str(peer),
            TUNNEL_KEY,
            sequence=gre.sequence,
            path_mtu=gre.mtu,
            keepalive_period=gre.keepalive_interval,
            keepalive_misses=gre.keepalive_misses,
        )
        unit.port.arm()
        unit.tunnels[peer] = agg_id
        self.units[0].bridge.add_member(unit.number, agg_id)
        self.log.info(
            "Tunnel to {peer} up on {port} as member {agg_id}",
            peer=str(peer),
            port=unit.port.name,
            agg_id=agg_id,
        )
        return unit.number, agg_id

    def tunnel_down(self, peer: ipaddress.IPv4Address) -> None:
        """
        Remove the tunnel to C{peer} and the L3 entries that use it.
        """
        for unit in self.gre.values():
            agg_id = unit.tunnels.pop(peer, None)
            if agg_id is None:
                continue
            bridge = self.units[0].bridge
            for entry in bridge.l3.entries():
                if entry.egress == (unit.number, agg_id):
                    bridge.l3.remove(entry.network)
            lost = self._statics_using(bridge, unit.number, agg_id)
            # remove_member also removes the static entries at the member or
            # source-forwarding to it.
            bridge.remove_member(unit.number, agg_id)
            for mac in lost:
                self._source_statics.discard((0, mac))
                self.log.warn(
                    "Static entry of {mac} removed with the tunnel to {peer}",
                    mac=mac.hex(":"),
                    peer=str(peer),
                )
            unit.engine.remove_tunnel(agg_id)
            unit.port.arm()
            self.units[0].dispatcher.set_flood(unit.number, agg_id, False)
            self.log.info("Tunnel to {peer} down", peer=str(peer))

    @staticmethod
    def _statics_using(bridge: Any, port: int, agg_id: int) -> list[bytes]:
        """
        Return the MAC addresses of the static entries at member C{agg_id}
        of C{port}, or source-forwarding to it.
        """
        macs = []
        for row in bridge.fdb_rows():
            if not row["static"]:
                continue
            at_member = (row["port"], row["agg_id"]) == (port, agg_id)
            forwarding_to = (row["src_port"], row["src_agg_id"]) == (port, agg_id)
            if at_member or forwarding_to:
                macs.append(bytes.fromhex(row["mac"].replace(":", "")))
        return macs

    def _link_event(self, kind: str, event: Any) -> None:
        unit = self.gre.get(kind)
        peers = {agg_id: peer for peer, agg_id in unit.tunnels.items()} if unit else {}
        peer = peers.get(event.agg_id)
        if isinstance(event, TunnelDown):
            self.log.warn(
                "Tunnel to {peer} down: {missed} keepalives unanswered",
                peer=str(peer),
                missed=getattr(event, "missed", "?"),
            )
        elif isinstance(event, TunnelUp):
            self.log.info("Tunnel to {peer} is up: keepalive replies arrive", peer=str(peer))

    def tunnels(self) -> list[tuple[str, ipaddress.IPv4Address, int]]:
        """
        Return C{(port kind, peer, aggregation ID)} of every tunnel.
        """
        return [
            (unit.kind, peer, agg_id)
            for unit in self.gre.values()
            for peer, agg_id in sorted(unit.tunnels.items())
        ]

    def egress_for(
        self, peer: ipaddress.IPv4Address | None, vlan: int = 0
    ) -> tuple[int, int | None]:
        """
        Return the bridge egress of C{peer}'s tunnel, or of the LAN port of
        C{vlan} for C{None}, bringing the tunnel up if needed.
        """
        if peer is None:
            return self.units[vlan].ports["lan"], None
        return self.tunnel_up(peer)

    # Control plane actions on the bridge

    def apply(self, action: actions.Action) -> bool:
        """
        Carry out a bridge or tunnel action of the control plane.

        @return: whether the action was one of the data path's; the daemon
            handles the others (sending messages, connecting peers).
        """
        unit = self.units[0]
        if isinstance(action, actions.TunnelUp):
            self.tunnel_up(action.peer)
        elif isinstance(action, actions.TunnelDown):
            self.tunnel_down(action.peer)
        elif isinstance(action, actions.AddL3Entry):
            if self._on_tunnel_bridge(action.network):
                port, agg_id = self.egress_for(action.peer)
                positive = action.match is actions.L3Match.POSITIVE
                self._put_l3_entry(unit.bridge, action.network, port, agg_id, positive)
        elif isinstance(action, actions.RemoveL3Entry):
            if any(entry.network == action.network for entry in unit.bridge.l3.entries()):
                unit.bridge.l3.remove(action.network)
        elif isinstance(action, actions.AddStaticEntry):
            self._add_static(action)
        elif isinstance(action, actions.RemoveStaticEntry):
            bridge = self._bridge(action.vlan_id)
            entry = bridge.lookup(action.mac)
            if entry is not None and entry.static:
                bridge.remove_static(action.mac)
        elif isinstance(action, actions.SetSourceEntry):
            self._set_source(action)
        elif isinstance(action, actions.ClearSourceEntry):
            self._clear_source(action.mac, action.vlan_id)
        elif isinstance(action, actions.SetFloodToPeer):
            port, agg_id = self.tunnel_up(action.peer)
            unit.dispatcher.set_flood(port, agg_id, action.enabled)
        else:
            return False
        self._deliver(unit)
        return True

    def _bridge(self, vlan: int) -> Any:
        unit = self.units.get(vlan) or self.units[0]
        return unit.bridge

    def _add_static(self, action: actions.AddStaticEntry) -> None:
        port, agg_id = self.egress_for(action.peer, action.vlan_id)
        bridge = self._bridge(action.vlan_id)
        try:
            bridge.add_static(action.mac, port, agg_id)
        except BridgeError as error:
            self.static_errors += 1
            self.log.error(
                "Static entry of {mac} towards {peer} rejected by the bridge: {error}",
                mac=action.mac.hex(":"),
                peer=str(action.peer),
                error=error,
            )
            return
        # A static entry replaces the one that carried a source egress.
        self._source_statics.discard(
            (action.vlan_id if action.vlan_id in self.units else 0, action.mac)
        )

    def _set_source(self, action: actions.SetSourceEntry) -> None:
        """
        Make C{action.mac} a visitor before its first frame: frames from it
        go to C{action.peer} whatever their destination. The bridge keeps a
        source egress only on a static entry, so the station gets one on the
        port where it is (learned, or its radio port) until the source entry
        is cleared.
        """
        vlan = action.vlan_id if action.vlan_id in self.units else 0
        bridge = self.units[vlan].bridge
        src_port, src_agg_id = self.egress_for(action.peer, vlan)
        entry = bridge.lookup(action.mac)
        station = self.station_ports.get(action.mac)
        if station is not None and station[0] == vlan:
            # The radio just reported the station here; a learned entry may
            # still point where it was before (a tunnel, the LAN).
            place = (station[1], None)
        elif entry is not None:
            place = (entry.port, entry.agg_id)
        else:
            self.log.warn(
                "No port known for {mac}; its source entry waits for its first frame",
                mac=action.mac.hex(":"),
            )
            return
        if place == (src_port, src_agg_id):
            return
        try:
            bridge.add_static(action.mac, *place, src_port=src_port, src_agg_id=src_agg_id)
        except BridgeError as error:
            # For example the station is behind one member of a
            # split-horizon port and its source egress is another member,
            # a path that port never forwards. Its frames then follow the
            # FDB and the L3 knowledge.
            self.static_errors += 1
            self.log.error(
                "Source entry of {mac} towards {peer} rejected by the bridge: {error}",
                mac=action.mac.hex(":"),
                peer=str(action.peer),
                error=error,
            )
            return
        self._source_statics.add((vlan, action.mac))

    def _clear_source(self, mac: bytes, vlan_id: int) -> None:
        vlan = vlan_id if vlan_id in self.units else 0
        bridge = self.units[vlan].bridge
        if (vlan, mac) in self._source_statics:
            self._source_statics.discard((vlan, mac))
            entry = bridge.lookup(mac)
            if entry is not None and entry.static:
                bridge.remove_static(mac)
            return
        bridge.clear_source(mac)

    def _put_l3_entry(
        self,
        bridge: Any,
        network: ipaddress.IPv4Network,
        port: int,
        agg_id: int | None,
        positive: bool,
    ) -> None:
        if any(entry.network == network for entry in bridge.l3.entries()):
            bridge.l3.modify(network, port=port, agg_id=agg_id, positive=positive)
        else:
            bridge.l3.add(network, port, agg_id, positive=positive)

    def _on_tunnel_bridge(self, network: ipaddress.IPv4Network) -> bool:
        """
        Return whether an L3 entry for C{network} belongs on the VLAN 0
        bridge, the only one with the tunnels as members.

        A configured subnet belongs to the bridge of its own VLAN. The
        bridges of other VLANs have no tunnel to point an entry at, so their
        subnets get no entry and their stations are bridged locally. Any
        other network, such as another SC's subnet, is a VLAN 0 entry.
        """
        for subnet in self.config.subnets:
            if subnet.network == network:
                return subnet.vlan == 0
        return True

    def set_l3_entries(self, vlan: int, entries: Iterable[L3Entry]) -> None:
        """
        Replace the L3 knowledge of the bridge of C{vlan}.
        """
        self.units[vlan].bridge.l3.replace(list(entries))

    # Bridge events

    def _deliver(self, unit: BridgeUnit) -> None:
        events = unit.bridge.pop_events()
        if events:
            self._on_events(events, unit.vlan)

    def _on_events(self, events: list[Any], vlan: int) -> None:
        for event in events:
            self.stages.bridge_event(event, vlan)
            for listener in self.event_listeners:
                try:
                    listener(event, vlan)
                except Exception:
                    self.log.failure("Bridge event listener failed on {event!r}", event=event)

    def watch_first_frame(self, mac: bytes, vlan: int) -> None:
        """
        Log the next frame delivered to C{mac} on the bridge of C{vlan} as
        the C{first-frame-back} roam stage.
        """
        unit = self.units.get(vlan)
        if unit is not None:
            unit.dispatcher.watched.add(mac)
