# -*- test-case-name: tests.control.test_core_scenarios -*-
"""
Actions that the control plane's role objects return for the daemon to carry out.

The role objects (L{roaming.control.sc}, L{roaming.control.ap},
L{roaming.control.discovery}) never touch a socket or a bridge. Every input
returns a list of the actions below, in the order the daemon should carry
them out.

A peer (another SC, or an AP) is named by its IPv4 address: the address its
certificate carries and the remote end of the tunnel towards it. In the
bridge actions, C{peer=None} names the node's own LAN port instead of a
tunnel (an SC with direct layer 2 connectivity to a client's home subnet,
or an AP's wired uplink).

Within the actions of one input, an L{AddStaticEntry} for a MAC address
always comes before the L{SetSourceEntry} for it, so a daemon that installs
both on one bridge entry can take the destination first.
"""

from __future__ import annotations

import enum
from ipaddress import IPv4Address, IPv4Network

import attrs

from roaming.control.messages import Message

__all__ = [
    "Action",
    "AddL3Entry",
    "AddStaticEntry",
    "ClearSourceEntry",
    "ConnectPeer",
    "L3Match",
    "RemoveL3Entry",
    "RemoveStaticEntry",
    "RemoveStation",
    "ReportProblem",
    "Send",
    "SendIappAddNotify",
    "SendLayer2Update",
    "SetFloodToPeer",
    "SetSourceEntry",
    "SetStationVlan",
    "TunnelDown",
    "TunnelUp",
]


class L3Match(enum.Enum):
    """
    Match rule of a bridge L3 knowledge entry for a frame's source IP address.
    """

    #: Frames whose source address lies inside the subnet go to the peer
    #: (an SC's entries for the subnets of other SCs).
    POSITIVE = "positive"
    #: Frames whose source address lies outside the subnet go to the peer
    #: (an AP's entry for its own subnet, pointing at its SC).
    NEGATIVE = "negative"


class Action:
    """
    Base class of every action.
    """

    __slots__ = ()


def _action(cls: type) -> type:
    return attrs.frozen(cls, slots=True)


@_action
class Send(Action):
    """
    Send C{message} to C{peer} over the control connection.
    """

    peer: IPv4Address
    message: Message


@_action
class ConnectPeer(Action):
    """
    Open a control connection to another SC, and keep it open.

    Of two SCs, the one with the lower address opens the connection, so
    each pair has exactly one. No SC is asked to connect to the primary or
    from it this way, because every SC's registration connection already
    links it with the primary.
    """

    peer: IPv4Address


@_action
class ReportProblem(Action):
    """
    Log C{message} as an error. The role object returns it on every event
    that meets the problem; the node logs it once per change of
    C{message} for the same C{key}.
    """

    key: str
    message: str


@_action
class TunnelUp(Action):
    """
    Bring up the tunnel towards C{peer} (a GRE aggregation member).
    """

    peer: IPv4Address


@_action
class TunnelDown(Action):
    """
    Bring down the tunnel towards C{peer}.
    """

    peer: IPv4Address


@_action
class AddL3Entry(Action):
    """
    Add a bridge L3 knowledge entry sending matching frames to C{peer}.
    """

    network: IPv4Network
    peer: IPv4Address
    match: L3Match


@_action
class RemoveL3Entry(Action):
    """
    Remove the L3 knowledge entry for C{network} that points at C{peer}.
    """

    network: IPv4Network
    peer: IPv4Address


@_action
class AddStaticEntry(Action):
    """
    Add a static bridge entry so frames for C{mac} go to C{peer}.

    C{peer=None} is the LAN port.
    """

    mac: bytes
    peer: IPv4Address | None
    vlan_id: int = 0


@_action
class RemoveStaticEntry(Action):
    """
    Remove the static bridge entry for C{mac}.
    """

    mac: bytes
    vlan_id: int = 0


@_action
class SetSourceEntry(Action):
    """
    Forward every frame whose source is C{mac} to C{peer}, whatever its
    destination (source forwarding). C{peer=None} is the LAN port.
    """

    mac: bytes
    peer: IPv4Address | None
    vlan_id: int = 0


@_action
class ClearSourceEntry(Action):
    """
    Clear the source forwarding entry for C{mac}, so its frames are
    forwarded by destination again.
    """

    mac: bytes
    vlan_id: int = 0


@_action
class SetFloodToPeer(Action):
    """
    Include (C{enabled}) or exclude the tunnel to C{peer} when flooding
    multicast and broadcast frames received on the LAN port.

    A home AP floods into its SC's tunnel only while it has travelers.
    """

    peer: IPv4Address
    enabled: bool


@_action
class SendLayer2Update(Action):
    """
    Send the IEEE 802.2 XID layer 2 update frame for C{mac} on the LAN
    port, so switches learn that C{mac} is reached through this AP.
    """

    mac: bytes
    vlan_id: int = 0


@_action
class SendIappAddNotify(Action):
    """
    Send an IEEE 802.11F ADD-notify for C{mac} to the IAPP multicast group
    on the LAN, so that other APs drop the station.
    """

    mac: bytes


@_action
class SetStationVlan(Action):
    """
    Put station C{mac} on VLAN C{vlan_id} in the radio driver.

    A station that re-associates with cached keys skips 802.1X, so the
    RADIUS server does not assign its VLAN again. The AP takes the VLAN ID
    from its client cache instead.
    """

    mac: bytes
    vlan_id: int


@_action
class RemoveStation(Action):
    """
    Remove C{mac} from the radio's table of associated stations.
    """

    mac: bytes
