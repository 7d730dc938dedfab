# -*- test-case-name: tests.daemons.test_services -*-
"""
The operating-system side of a daemon: device ports, radio and netlink.

A daemon asks a L{Devices} object for every port it attaches and for the
address configuration of its own interface. So the whole wiring of
L{roaming.tap.node} runs in unit tests on memory fakes (the C{FakeDevices}
of the daemon tests), and for real under twistd with L{SystemDevices}.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Protocol

from twisted.logger import Logger

from roaming import radio as radio_package
from roaming.ports.gre import RawGrePort, UdpGrePort
from roaming.ports.packet import PacketSocketPort
from roaming.ports.tap import TapPort
from roaming.tunnel import GreEndpoint, Transport

__all__ = ["AddressError", "Devices", "SystemDevices"]

_log = Logger()


class AddressError(OSError):
    """
    The node's own interface could not be configured.
    """


class Devices(Protocol):
    """
    Factories for everything a daemon opens on the host.
    """

    def tap_port(self, interface: str) -> Any:
        """
        Return an unstarted TAP port creating C{interface}.
        """

    def packet_port(self, interface: str) -> Any:
        """
        Return an unstarted packet-socket port on the existing C{interface}.
        """

    def gre_port(
        self,
        transport: str,
        local: str,
        engine: GreEndpoint,
        udp_port: int,
        *,
        on_link_event: Any,
        ignore_remote: Any = None,
    ) -> Any:
        """
        Return an unstarted GRE port framing with C{engine}; C{transport}
        is C{"ip"} or C{"udp"}, as the engine was built for.

        @param ignore_remote: called with the outer source address of each
            received packet; the port drops a packet for which it returns
            true before it reaches the engine.
        """

    def configure_address(
        self,
        interface: str,
        address: ipaddress.IPv4Interface,
        gateway: ipaddress.IPv4Address | None,
    ) -> None:
        """
        Assign C{address} to C{interface}, bring it up, and install the
        default route through C{gateway} when given.

        @raise AddressError: naming the interface and the failed step.
        """

    def set_up(self, interface: str) -> None:
        """
        Bring C{interface} up.

        @raise AddressError: naming the interface.
        """

    def isolate_port(self, interface: str) -> None:
        """
        Keep the host's own IP stack off C{interface}, a bridge port.
        """

    def hardware_address(self, interface: str) -> bytes:
        """
        Return the MAC address of C{interface}.

        @raise AddressError: naming the interface.
        """

    def radio(self, kind: str, listener: Any, interface: str, control_path: str) -> Any:
        """
        Return the radio service for an AP (a Twisted service).
        """


class SystemDevices:
    """
    The real devices: L{roaming.ports} on the host and pyroute2 for netlink.
    """

    def __init__(self, reactor: Any = None) -> None:
        self._reactor = reactor

    def tap_port(self, interface: str) -> TapPort:
        """
        Return a TAP port that creates C{interface} when started.
        """
        return TapPort(interface.encode("ascii"), reactor=self._reactor)

    def packet_port(self, interface: str) -> PacketSocketPort:
        """
        Return a packet-socket port on C{interface}.
        """
        return PacketSocketPort(interface, reactor=self._reactor)

    def gre_port(
        self,
        transport: str,
        local: str,
        engine: GreEndpoint,
        udp_port: int,
        *,
        on_link_event: Any,
        ignore_remote: Any = None,
    ) -> RawGrePort | UdpGrePort:
        """
        Return a GRE port on a raw IP protocol 47 socket, or on a UDP
        socket bound to C{udp_port}, matching the engine's transport.
        """
        options = {
            "on_tunnel_event": on_link_event,
            "ignore_remote": ignore_remote,
            "reactor": self._reactor,
        }
        if engine.transport is Transport.GRE_IN_UDP:
            return UdpGrePort(local, engine, port=udp_port, **options)
        return RawGrePort(local, engine, **options)

    def configure_address(
        self,
        interface: str,
        address: ipaddress.IPv4Interface,
        gateway: ipaddress.IPv4Address | None,
    ) -> None:
        """
        Configure the node's own interface through netlink (pyroute2).
        """
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        with IPRoute() as ipr:
            step = "look up"
            try:
                indexes = ipr.link_lookup(ifname=interface)
                if not indexes:
                    raise AddressError(f"interface {interface} not found; was its TAP created?")
                index = indexes[0]
                step = f"assign {address} to"
                ipr.addr(
                    "replace",
                    index=index,
                    address=str(address.ip),
                    prefixlen=address.network.prefixlen,
                )
                step = "bring up"
                ipr.link("set", index=index, state="up")
                if gateway is not None:
                    step = f"add the default route via {gateway} on"
                    ipr.route("replace", dst="0.0.0.0/0", gateway=str(gateway), oif=index)
            except NetlinkError as error:
                raise AddressError(
                    f"failed to {step} interface {interface}: {error.args[-1]}"
                ) from None
        _log.info(
            "Configured {interface} with {address}, gateway {gateway}",
            interface=interface,
            address=str(address),
            gateway=str(gateway) if gateway is not None else "none",
        )

    def set_up(self, interface: str) -> None:
        """
        Bring C{interface} up through netlink.
        """
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        with IPRoute() as ipr:
            try:
                indexes = ipr.link_lookup(ifname=interface)
                if not indexes:
                    raise AddressError(f"interface {interface} not found")
                ipr.link("set", index=indexes[0], state="up")
            except NetlinkError as error:
                raise AddressError(
                    f"failed to bring up interface {interface}: {error.args[-1]}"
                ) from None

    def isolate_port(self, interface: str) -> None:
        """
        Stop the host from replying to ARP on C{interface} and disable IPv6
        on it, so the interface carries only the bridge's frames.

        The kernel answers ARP for any of its addresses on any interface
        (C{arp_ignore} 0, the default), so without this a neighbour asking
        for the node's own address on the LAN learns the MAC address of the
        packet-socket interface instead of the TAP's. Frames to that
        address reach the host stack directly and also pass through the
        bridge, which may have learned it behind a tunnel: a loop. IPv6
        would also send router and neighbour solicitations from the
        interface's address, which the bridge never sees as a source on
        the port.
        """
        settings = (
            (f"/proc/sys/net/ipv4/conf/{interface}/arp_ignore", "1"),
            (f"/proc/sys/net/ipv6/conf/{interface}/disable_ipv6", "1"),
        )
        for path, value in settings:
            try:
                with open(path, "w") as setting:
                    setting.write(value)
            except OSError as error:
                _log.warn(
                    "Failed to set {path} to {value}: {error}; the host may still"
                    " reply to ARP or send IPv6 on bridge port {interface}",
                    path=path,
                    value=value,
                    error=error,
                    interface=interface,
                )

    def hardware_address(self, interface: str) -> bytes:
        """
        Return the MAC address of C{interface} through netlink.
        """
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            links = ipr.get_links(ifname=interface)
        if not links:
            raise AddressError(f"interface {interface} not found; was its TAP created?")
        address = links[0].get_attr("IFLA_ADDRESS")
        return bytes.fromhex(address.replace(":", ""))

    def radio(self, kind: str, listener: Any, interface: str, control_path: str) -> Any:
        """
        Return the radio service from L{roaming.radio.make_radio}.
        """
        return radio_package.make_radio(
            kind, listener, interface=interface, control_path=control_path, reactor=self._reactor
        )
