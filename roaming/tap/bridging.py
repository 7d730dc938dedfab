# -*- test-case-name: tests.daemons.test_bridging -*-
"""
Binding of a bridge core to the ports of a daemon.

L{NodeDispatcher} extends L{roaming.ports.dispatch.BridgeDispatcher} with
what a roaming node needs around the per-frame path:

  - a C{tunnel} option of L{NodeDispatcher.attach}, which puts a GRE port
    under the flood policy below, besides the bridge core's own port options
    (C{l3_learning}, C{split_horizon});
  - the flood policy of tunnels. The bridge floods to every port, but a
    node shares its LAN with the far end of most of its tunnels, so plain
    flooding would copy a subnet's broadcasts (DHCP among them) into other
    subnets and loop them back onto the LAN. A flooded frame, or a group
    frame, that the bridge does not send to its source's visitor egress:

      - enters a tunnel only if flooding into that tunnel member is
        enabled (L{NodeDispatcher.set_flood}), or the node lets floods
        pass from the ingress port into that tunnel port
        (L{NodeDispatcher.allow_flood}: an SC between its AP and SC
        tunnels);
      - enters a I{guarded} port (the LAN) from a tunnel only if its source
        has a static entry on that tunnel (a traveler, whose home AP puts
        its frames on the home LAN);
      - never enters a tunnel from the node's own TAP
        (L{NodeDispatcher.keep_local}), whose unicast frames also leave by
        the LAN whatever the bridge learned;
      - is relayed without learning when it is a LAN host's broadcast that a
        home AP copied into its tunnel (L{NodeDispatcher.relay});
  - the bridge's events, handed to the daemon after each frame;
  - a watch list of stations whose next delivered frame is logged as a
    roam stage (the first frame back to a station after it associated).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from roaming.bridge import Bridge
from roaming.config import BridgeConfig
from roaming.ports.counters import RepeatLimitedLog
from roaming.ports.dispatch import BridgeDispatcher
from roaming.ports.tap import FrameSink

__all__ = ["NodeDispatcher", "make_bridge"]

_log = Logger()


def make_bridge(settings: BridgeConfig, *, vlan: int) -> Bridge:
    """
    Build the bridge core of one VLAN from the C{[bridge]} settings.
    """
    return Bridge(
        f"vlan{vlan}",
        aging_time=settings.aging_time,
        max_entries=settings.max_entries,
        max_l3_entries=settings.max_l3_entries,
        max_frame_size=settings.max_frame_size,
    )


class NodeDispatcher(BridgeDispatcher):
    """
    A bridge dispatcher with port options, a tunnel flood policy, event
    delivery and first-frame watches.

    @param on_events: called with the list of bridge events queued while
        processing a frame, when there are any.
    @param on_first_frame: called with C{(mac, port name)} when a frame is
        delivered to a watched station.
    """

    def __init__(
        self,
        bridge: Bridge,
        *,
        clock: Any,
        on_events: Callable[[list], None],
        on_first_frame: Callable[[bytes, str], None],
    ) -> None:
        super().__init__(bridge, clock=clock)
        self._on_events = on_events
        self._on_first_frame = on_first_frame
        #: Aggregation ports whose members get the tunnel flood policy.
        self._tunnel_ports: set[int] = set()
        #: (port, agg_id) pairs that floods may enter.
        self._flood_enabled: set[tuple[int, int | None]] = set()
        #: Tunnel ports that floods from an ingress port may always enter.
        self._flood_paths: dict[int, frozenset[int]] = {}
        #: Ports that floods from tunnels enter only for travelers.
        self._guarded: set[int] = set()
        #: Ports whose frames never enter a tunnel (the node's own TAP).
        self._local: set[int] = set()
        self._uplink: int | None = None
        #: Tunnel ports whose copies of LAN broadcasts are relayed, not learned.
        self._relays: set[int] = set()
        self.relayed = 0
        #: Stations whose next delivered frame is reported, by MAC.
        self.watched: set[bytes] = set()
        self.flood_filtered = 0
        self._limited = RepeatLimitedLog(_log)

    def attach(self, port: Any, *, tunnel: bool = False, **port_options: bool) -> int:
        """
        Add C{port} to the bridge with the given options and start it.

        @param tunnel: apply the tunnel flood policy to the port's members.
        @param port_options: passed to C{Bridge.add_port}: C{access_controlled},
            C{l3_learning} and C{split_horizon}.
        """
        number = super().attach(port, **port_options)
        # The port is started, but the reactor delivers its first frame
        # only after this returns.
        if tunnel:
            self._tunnel_ports.add(number)
        return number

    def detach(self, number: int):
        """
        Stop the port and remove it from the bridge.
        """
        result = super().detach(number)
        self._tunnel_ports.discard(number)
        self._flood_enabled = {pair for pair in self._flood_enabled if pair[0] != number}
        for entry in list(self.bridge.l3.entries()):
            if entry.port == number:
                self.bridge.l3.remove(entry.network)
        self.bridge.remove_port(number)
        return result

    def set_flood(self, port: int, agg_id: int | None, enabled: bool) -> None:
        """
        Let floods enter the tunnel C{(port, agg_id)}, or stop them.
        """
        if enabled:
            self._flood_enabled.add((port, agg_id))
        else:
            self._flood_enabled.discard((port, agg_id))

    def allow_flood(self, ingress: int, egress: int) -> None:
        """
        Let every flood from port C{ingress} enter the tunnel port C{egress}.
        """
        self._flood_paths[ingress] = self._flood_paths.get(ingress, frozenset()) | {egress}

    def keep_local(self, port: int, uplink: int) -> None:
        """
        Keep the frames of C{port} (the node's own TAP) out of the tunnels.

        Floods from it skip the tunnels, even enabled ones, so the far end
        never learns the node behind a tunnel. A unicast frame that the
        bridge sends into a tunnel goes to C{uplink} (the LAN port)
        instead: the node's own address is on the LAN, and the bridge may
        have learned a LAN host behind a tunnel from the replies a home AP
        sends its travelers' way.
        """
        self._local.add(port)
        self._uplink = uplink

    def relay(self, port: int) -> None:
        """
        Relay group frames arriving on tunnel port C{port} whose source the
        bridge has learned on a plain port (a LAN host, whose broadcast a home AP
        copied into its tunnel for its travelers) straight to the tunnel
        ports that L{allow_flood} names, without passing them to the bridge:
        learning the LAN host on the tunnel would send the node's own
        traffic for that host into the tunnel.
        """
        self._relays.add(port)

    def guard(self, port: int) -> None:
        """
        Keep floods that arrive through a tunnel out of C{port}, except
        frames from travelers.
        """
        self._guarded.add(port)

    def flood_enabled(self, port: int, agg_id: int | None) -> bool:
        """
        Return whether floods enter the tunnel C{(port, agg_id)}.
        """
        return (port, agg_id) in self._flood_enabled

    def _sink_for(self, number: int) -> FrameSink:
        process = self.bridge.process
        has_events = self.bridge.has_events
        pop_events = self.bridge.pop_events
        seconds = self._clock.seconds
        send_to_egress = self._send_to_egress
        tunnel_ports = self._tunnel_ports
        watched = self.watched

        # Sets, not flags, because relay() and keep_local() may be called
        # after the port is attached.
        relays = self._relays
        local_ports = self._local

        def frame_received(agg_id: int | None, frame: bytes) -> None:
            # An empty frame goes on to the bridge, which counts it as too
            # short.
            if (
                frame
                and frame[0] & 1
                and number in relays
                and self._relay_copy(number, agg_id, frame)
            ):
                return
            try:
                egress = process(number, agg_id, frame, seconds())
            except Exception as error:
                # An exception reaching the reactor would unregister the
                # port's reader, so it costs this frame only.
                self._count_bridge_error(number, agg_id, error)
                return
            if has_events():
                self._on_events(pop_events())
            if not egress:
                # Dropped by the bridge, which counted why: malformed frames
                # (an empty one too) end here.
                return
            if tunnel_ports:
                if len(egress) > 1 or frame[0] & 1:
                    egress = self._filter_floods(number, agg_id, egress, frame)
                elif egress and egress[0][0] in tunnel_ports and number in local_ports:
                    egress = ((self._uplink, None),)
            if watched and frame[0:6] in watched:
                self._first_frame(frame[0:6], egress)
            send_to_egress(frame, egress)

        return frame_received

    def _relay_copy(self, ingress: int, agg_id: int | None, frame: bytes) -> bool:
        source = self.bridge.lookup(frame[6:12])
        if source is None or source.static or source.port in self._tunnel_ports:
            return False
        for target in self._flood_paths.get(ingress, ()):
            port = self._ports.get(target)
            if port is None:
                continue
            for member in port.member_ids():
                port.send_frame(frame, member)
        self.relayed += 1
        return True

    def _filter_floods(
        self, ingress: int, ingress_agg_id: int | None, egress: tuple, frame: bytes
    ) -> tuple:
        source = self.bridge.lookup(frame[6:12])
        if source is not None and egress == source.src_egress:
            # Source forwarding of a visitor: the bridge chose this egress.
            # A visitor's frame that arrives away from its entry (a static
            # conflict) is flooded instead, and filtered like any flood.
            return egress
        tunnels = self._tunnel_ports
        from_tunnel = ingress in tunnels
        traveler = from_tunnel and source is not None and source.static and source.port == ingress
        paths = self._flood_paths.get(ingress, frozenset())
        local = ingress in self._local
        kept = []
        for pair in egress:
            port = pair[0]
            if port in tunnels:
                if local or (pair not in self._flood_enabled and port not in paths):
                    continue
            elif from_tunnel and port in self._guarded and not traveler:
                continue
            kept.append(pair)
        self.flood_filtered += len(egress) - len(kept)
        return tuple(kept)

    def _first_frame(self, mac: bytes, egress: tuple) -> None:
        names = [self._ports[port].name for port, _ in egress if port in self._ports]
        if not names:
            return
        self.watched.discard(mac)
        self._on_first_frame(mac, ",".join(names))
