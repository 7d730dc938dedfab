# -*- test-case-name: tests.bridge.test_core -*-
"""
Events, drop reasons and counter names that the bridge reports to its daemon.

Events are queued by L{roaming.bridge.Bridge} while it processes frames and
taken with C{Bridge.pop_events()}.  Each source forwarding that a
L{RoamerDetected} starts ends with exactly one L{SourceCleared}, whatever
ends it, so a daemon can keep its list of visitors from events alone.  An
overflowing queue breaks that pairing; the bridge counts each dropped event.
"""

__all__ = [
    "AddressLearned",
    "ClearReason",
    "DropReason",
    "Event",
    "PortCounter",
    "RoamerDetected",
    "SourceCleared",
    "StationMoved",
]

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class DropReason(IntEnum):
    """
    Reason for dropping a frame.  Each reason has its own counter.
    """

    RUNT = 0
    """Shorter than the 14 bytes of an Ethernet header."""

    OVERSIZED = 1
    """Longer than the bridge's C{max_frame_size}."""

    INVALID_SOURCE = 2
    """
    Source MAC address is a group address, which a source never is (IEEE
    802.3 clause 3.2.3), or all zeros.
    """

    RESERVED_GROUP = 3
    """
    Destination is one of 01:80:C2:00:00:00 to 0F, which a bridge must not
    forward (IEEE 802.1D-2004 clause 7.12.6).
    """

    SAME_SEGMENT = 4
    """Destination was learned on the ingress port and aggregation ID."""

    UNAUTHORISED_SOURCE = 5
    """Source station is not authorised."""

    UNAUTHORISED_DESTINATION = 6
    """Destination station is not authorised."""

    NO_EGRESS = 7
    """Flooding found no port or member other than the ingress."""

    UNKNOWN_MEMBER = 8
    """Arrived on an aggregation ID that is not a member of its port."""

    SPLIT_HORIZON = 9
    """
    Destination is on another member of the ingress's split-horizon port,
    which forwards nothing between members.
    """


class PortCounter(IntEnum):
    """
    Per-port counters, indexed by ingress port.
    """

    RECEIVED = 0
    """Frames passed to C{process} for this port."""

    FORWARDED = 1
    """Frames sent to the one port of a known destination."""

    FLOODED = 2
    """Frames flooded (group or unknown destination)."""

    SOURCE_FORWARDED = 3
    """Frames of a visiting station sent to its source-forwarding egress."""

    DROPPED = 4
    """Frames dropped, for any L{DropReason}."""


class ClearReason(StrEnum):
    """
    Reason that a station's source forwarding ended.
    """

    DHCP_DISCOVER = "dhcp-discover"
    """The station sent a DHCP DISCOVER: it gives up its home subnet."""

    DHCP_REQUEST_NO_ADDRESS = "dhcp-request-no-address"
    """The station sent a DHCP REQUEST from 0.0.0.0 without ciaddr."""

    CHANGED = "changed"
    """The station's address now matches another egress; a L{RoamerDetected} follows."""

    HOME = "home"
    """The station's address now matches no entry of the layer-3 database."""

    MOVED = "moved"
    """The station appeared on another port or aggregation ID."""

    AGED = "aged"
    """The entry was not refreshed within the aging time."""

    EVICTED = "evicted"
    """The entry was evicted to make room in a full forwarding database."""

    REMOVED = "removed"
    """The entry, its port or its aggregation member was removed, or C{clear_source} was called."""


@dataclass(frozen=True, slots=True)
class RoamerDetected:
    """
    A station's address matched the layer-3 database: its traffic now goes
    to C{src_port}, C{src_agg_id} whatever its destination.
    """

    mac: bytes
    ip: int
    port: int
    """Port where the station was learned."""
    agg_id: int | None
    src_port: int
    src_agg_id: int | None


@dataclass(frozen=True, slots=True)
class SourceCleared:
    """
    A station's source forwarding ended; its traffic is bridged by
    destination again, or its entry is gone.
    """

    mac: bytes
    reason: ClearReason


@dataclass(frozen=True, slots=True)
class StationMoved:
    """
    A learned station appeared on another port or aggregation ID and was
    learned there at once.
    """

    mac: bytes
    old_port: int
    old_agg_id: int | None
    port: int
    agg_id: int | None


@dataclass(frozen=True, slots=True)
class AddressLearned:
    """
    The bridge saw a station's IPv4 address for the first time, and the
    station is not a visitor (no entry of the layer-3 database matched).
    """

    mac: bytes
    ip: int
    port: int
    agg_id: int | None


Event = RoamerDetected | SourceCleared | StationMoved | AddressLearned
