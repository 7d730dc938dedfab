# -*- test-case-name: tests.radio -*-
"""
The wireless side of an access point.

An AP daemon needs two things from its radio: station events (a MAC address
connected or disconnected) and the name of the network interface that
carries the stations' Ethernet frames, on which it opens a packet-socket
port. L{IRadio} and L{IStationListener} state that contract.

There is one client implementation and two servers it can follow:

  - L{HostapdRadio} attaches to hostapd's control interface (a UNIX
    datagram socket such as C{/var/run/hostapd/wlan0}), turns
    C{AP-STA-CONNECTED} and C{AP-STA-DISCONNECTED} events into listener
    calls, pings hostapd and attaches again after a restart.
  - L{EmulatedRadio} is the lab's stand-in for hostapd: it serves the same
    protocol on a socket per emulated access point, and roaming-lab calls
    its C{connect_station} and C{disconnect_station} when it moves a
    client between cells.

So an AP daemon configured with radio kind C{"hostapd"} or C{"emulated"}
runs the same code: L{make_radio} returns a L{HostapdRadio} for both, and
the kind only records who serves the socket. L{roaming.radio.testing}
has an in-memory radio for unit tests.

The parsing and attachment state machine are sans-IO, in
L{roaming.radio.hostapd}.
"""

from roaming.radio.emulated import EmulatedHostapd, EmulatedRadio
from roaming.radio.hostapd import (
    HostapdControl,
    StationConnected,
    StationDisconnected,
    format_mac,
    parse_event,
    parse_mac,
)
from roaming.radio.interfaces import IRadio, IStationListener
from roaming.radio.service import HostapdRadio

__all__ = [
    "RADIO_KINDS",
    "EmulatedHostapd",
    "EmulatedRadio",
    "HostapdControl",
    "HostapdRadio",
    "IRadio",
    "IStationListener",
    "StationConnected",
    "StationDisconnected",
    "format_mac",
    "make_radio",
    "parse_event",
    "parse_mac",
]

#: The radio kinds an AP configuration may name.
RADIO_KINDS = ("hostapd", "emulated")


def make_radio(
    kind: str,
    listener: IStationListener,
    *,
    interface: str,
    control_path: str,
    reactor: object = None,
) -> HostapdRadio:
    """
    Build the radio service an AP configuration describes.

    @param kind: C{"hostapd"} for a real hostapd, C{"emulated"} for a socket
        served by roaming-lab's L{EmulatedRadio}.
    @param listener: the AP daemon's L{IStationListener}.
    @param interface: the network interface carrying station frames.
    @param control_path: the control socket to attach to.
    @raise ValueError: if C{kind} is not one of L{RADIO_KINDS}.
    """
    if kind not in RADIO_KINDS:
        raise ValueError(f"invalid radio kind {kind!r}: expected one of {', '.join(RADIO_KINDS)}")
    return HostapdRadio(control_path, listener, interface=interface, reactor=reactor)
