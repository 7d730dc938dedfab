# -*- test-case-name: tests.bridge.test_scenarios -*-
"""
A learning Ethernet bridge with layer-3 knowledge, sans-IO.

Theory of operation
===================

L{Bridge.process} takes one frame, the port and aggregation ID it arrived
on, and the time, and returns where the frame goes.  It runs two phases.

I{Learning} records the source MAC address in the forwarding database
(FDB) against the ingress port and aggregation ID.  A station that is new,
or whose entry has no IPv4 address yet, is looked up in the layer-3
database (L{roaming.bridge.l3}) by its address: the IPv4 source address, or
the ARP sender address, so an ARP request sent before any IP packet already
counts.  A match makes the station a I{visitor}: its entry gets a source
egress (SRC), is authorised, and a L{RoamerDetected} event is queued.  A
DHCP DISCOVER, or a DHCP REQUEST from 0.0.0.0 without ciaddr, resets the
entry: the station gives up its address, so its SRC is cleared and the
frame is bridged like any other.  A DHCP REQUEST that carries the client's
own address is looked up by that address, so it reaches the home subnet.
So is a REQUEST from a rebooting client (INIT-REBOOT: no ciaddr, no server
identifier) whose requested address, option 50, matches as foreign; with a
local or unmatched option 50 it resets like the others.  A station seen on
a new port or aggregation ID is learned there at once.

I{Forwarding} prefers the source: a frame from a visitor goes to its SRC,
whatever the destination, including broadcast, multicast and ARP, so the
frame reaches the home subnet before anything floods it.  Otherwise a known unicast
destination gets its one port, and a group or unknown destination floods
every port but the ingress one, with one copy per member of an aggregation
port except the ingress member.

With an empty layer-3 database no station is ever a visitor, and the bridge
forwards exactly like a plain learning bridge.

Rules beyond the plain algorithm, each to keep a working path from being
bent:

 - A match whose egress is the ingress itself makes no visitor: the station
   is reached over the path towards its own home, as are the hosts of a
   home subnet whose traffic arrives through a tunnel.
 - Addresses that belong to no subnet (0.0.0.0/8, 127.0.0.0/8,
   169.254.0.0/16, 224.0.0.0 and up) are never looked up.
 - A port added with C{l3_learning=False} (an uplink whose router forwards
   packets from every subnet) learns by MAC address only.
 - A split-horizon aggregation port forwards nothing from one member to
   another: no flood, no known unicast, no source forwarding.
 - On an access-controlled port, a station that is neither authorised nor
   made a visitor by the frame never moves or evicts another entry.

Only frames that learning must inspect are classified: frames from a new,
moved or not yet addressed station, and frames to a group address (which
may be DHCP).  A unicast frame from a known station costs two dictionary
lookups.
"""

__all__ = [
    "DEFAULT_AGING_TIME",
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_MAX_EVENTS",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_MEMBERS",
    "MIN_FRAME_SIZE",
    "Bridge",
    "BridgeError",
    "FdbEntry",
]

import ipaddress
from collections import deque

from roaming.bridge.classify import DHCP_DISCOVER, DHCP_REQUEST, classify
from roaming.bridge.events import (
    AddressLearned,
    ClearReason,
    DropReason,
    Event,
    PortCounter,
    RoamerDetected,
    SourceCleared,
    StationMoved,
)
from roaming.bridge.l3 import MAX_L3_ENTRIES, Egress, L3Database, is_unicast_host_address
from roaming.errors import DecodeError, RoamingError

DEFAULT_AGING_TIME = 300.0
"""Seconds an unrefreshed entry lives: IEEE 802.1D-2004 Table 7-5 recommends 300."""

DEFAULT_MAX_ENTRIES = 4096
"""Default bound on FDB entries, static ones included."""

DEFAULT_MAX_FRAME_SIZE = 65535
"""Default bound on a frame's length in bytes; longer frames are dropped."""

DEFAULT_MAX_EVENTS = 1024
"""Default bound on queued events; the oldest event is dropped and counted."""

DEFAULT_MAX_MEMBERS = 4096
"""Default bound on the members of one aggregation port."""

MIN_FRAME_SIZE = 60
"""
Smallest allowed C{max_frame_size}: the 64-byte minimum Ethernet frame of
IEEE 802.3 without its 4-byte FCS.
"""

_ETHERNET_HEADER = 14
_ZERO_MAC = bytes(6)
_RESERVED_PREFIX = b"\x01\x80\xc2\x00\x00"

# Plain ints for the per-frame path.
_RECEIVED = int(PortCounter.RECEIVED)
_FORWARDED = int(PortCounter.FORWARDED)
_FLOODED = int(PortCounter.FLOODED)
_SOURCE_FORWARDED = int(PortCounter.SOURCE_FORWARDED)
_DROPPED = int(PortCounter.DROPPED)

_NOTHING: tuple[Egress, ...] = ()


class BridgeError(RoamingError, ValueError):
    """
    A management request names a port, member or station that does not
    exist, or would break a bound of the bridge.
    """


class FdbEntry:
    """
    One station in the forwarding database.

    C{egress} and C{src_egress} are one-pair tuples, built once and returned
    by L{Bridge.process} as they are.
    """

    __slots__ = (
        "agg_id",
        "authorised",
        "egress",
        "ip",
        "last_seen",
        "mac",
        "port",
        "settled",
        "src_egress",
        "static",
    )

    def __init__(self, mac: bytes, port: int, agg_id: int | None, now: float) -> None:
        self.mac = mac
        self.port = port
        """Port where the station is: the destination port for frames to it."""
        self.agg_id = agg_id
        self.egress: tuple[Egress, ...] = ((port, agg_id),)
        self.src_egress: tuple[Egress, ...] | None = None
        """Where every frame from the station goes, for a visitor; else C{None}."""
        self.authorised = True
        self.static = False
        self.last_seen = now
        self.ip = 0
        """The station's IPv4 address, 0 until one is seen."""
        self.settled = False
        """Whether learning is done with this entry, so frames from it may skip classification."""


class _Port:
    __slots__ = (
        "access_controlled",
        "aggregation",
        "l3_learning",
        "members",
        "name",
        "number",
        "split_horizon",
    )

    def __init__(
        self,
        number: int,
        name: str,
        aggregation: bool,
        access_controlled: bool,
        l3_learning: bool,
        split_horizon: bool,
    ) -> None:
        self.number = number
        self.name = name
        self.aggregation = aggregation
        self.access_controlled = access_controlled
        self.l3_learning = l3_learning
        self.split_horizon = split_horizon
        # Insertion-ordered, so floods list members in the order they were added.
        self.members: dict[int, None] = {}


def _as_mac(mac: bytes | str) -> bytes:
    """Return a MAC address given as 6 bytes or as colon- or dash-separated hex."""
    if isinstance(mac, bytes) and len(mac) == 6:
        return mac
    if isinstance(mac, str):
        digits = mac.replace(":", "").replace("-", "")
        if len(digits) == 12:
            try:
                return bytes.fromhex(digits)
            except ValueError:
                pass
    raise BridgeError(f"invalid MAC address {mac!r}: give 6 bytes or text like 02:00:00:00:00:01")


def _as_frame(frame: object) -> bytes:
    """Return a bytes-like frame as C{bytes}."""
    if isinstance(frame, bytes | bytearray | memoryview):
        return bytes(frame)
    raise BridgeError(f"frame must be bytes, bytearray or memoryview, got {type(frame).__name__}")


def _format_mac(mac: bytes) -> str:
    return mac.hex(":")


def _format_ip(ip: int) -> str | None:
    return str(ipaddress.IPv4Address(ip)) if ip else None


class Bridge:
    """
    One bridge instance.  Instances share nothing, so an access point runs
    one per VLAN with no forwarding between them.

    @param name: name used in error messages and snapshots.
    @param aging_time: seconds after which L{expire} removes a dynamic entry
        that no frame refreshed.
    @param max_entries: bound on FDB entries (see L{process} for eviction).
    @param max_frame_size: frames longer than this many bytes are dropped;
        at least L{MIN_FRAME_SIZE}.
    @param max_events: bound on the event queue.
    @param max_members: bound on the members of one aggregation port.
    @param max_l3_entries: bound on the layer-3 database.
    @ivar l3: the layer-3 knowledge database; changing it makes every
        dynamic entry look its address up again on its next addressed frame.
    """

    def __init__(
        self,
        name: str = "bridge",
        *,
        aging_time: float = DEFAULT_AGING_TIME,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_members: int = DEFAULT_MAX_MEMBERS,
        max_l3_entries: int = MAX_L3_ENTRIES,
    ) -> None:
        if aging_time <= 0:
            raise BridgeError(f"aging_time must be positive, got {aging_time!r}")
        if max_entries < 1 or max_events < 1 or max_members < 1:
            raise BridgeError("max_entries, max_events and max_members must be at least 1")
        if not isinstance(max_frame_size, int) or max_frame_size < MIN_FRAME_SIZE:
            raise BridgeError(
                f"max_frame_size must be an int of at least {MIN_FRAME_SIZE} bytes, "
                f"got {max_frame_size!r}"
            )
        self.name = name
        self.aging_time = aging_time
        self._max_entries = max_entries
        self._max_frame_size = max_frame_size
        self._max_members = max_members

        self._ports: dict[int, _Port] = {}
        self._port_counters: dict[int, list[int]] = {}
        self._next_port = 1
        self._flood_cache: dict[Egress, tuple[Egress, ...]] = {}

        self._fdb: dict[bytes, FdbEntry] = {}
        # Dynamic MACs in the order they were learned: the front is evicted first.
        self._dynamic: dict[bytes, None] = {}
        self._authorised: set[bytes] = set()
        self._next_deadline: float | None = None

        self._drops = [0] * len(DropReason)
        self._malformed: dict[str, int] = {}
        self._stats = {
            "learned": 0,
            "moved": 0,
            "expired": 0,
            "evicted": 0,
            "not_learned_full": 0,
            "static_conflicts": 0,
            "events_dropped": 0,
        }
        self._events: deque[Event] = deque(maxlen=max_events)

        self.l3 = L3Database(
            self._check_egress, on_change=self._unsettle_all, max_entries=max_l3_entries
        )

    # -- ports and members ------------------------------------------------

    def add_port(
        self,
        name: str,
        *,
        aggregation: bool = False,
        access_controlled: bool = False,
        l3_learning: bool = True,
        split_horizon: bool = False,
    ) -> int:
        """
        Add a port and return its number.

        @param aggregation: the port carries several members (tunnels,
            VLANs), each named by an aggregation ID.
        @param access_controlled: stations learned here start unauthorised,
            unless the layer-3 database makes them visitors or L{authorise}
            named them; frames from or to an unauthorised station are
            dropped.
        @param l3_learning: look new stations up in the layer-3 database.
            Turn it off on an uplink towards a router, whose frames carry
            source addresses of every subnet.
        @param split_horizon: on an aggregation port, never forward a frame
            from one member to another member: floods skip the other
            members, known unicast between members is dropped, and a layer-3
            match on another member makes no visitor.  Use it for a full
            mesh of tunnels, where each peer reaches every other peer
            directly and relayed frames would loop.
        """
        number = self._next_port
        self._next_port += 1
        self._ports[number] = _Port(
            number, name, aggregation, access_controlled, l3_learning, split_horizon
        )
        self._port_counters[number] = [0] * len(PortCounter)
        self._flood_cache.clear()
        return number

    def remove_port(self, port: int) -> None:
        """
        Remove a port and every FDB entry that points at it.

        @raise BridgeError: the port does not exist, or layer-3 entries
            still point at it.
        """
        self._port(port)
        if self.l3.references(port):
            raise BridgeError(f"layer-3 entries point at port {port}; remove or modify them first")
        self._remove_entries(lambda entry: _uses_port(entry, port, None, any_member=True))
        del self._ports[port]
        del self._port_counters[port]
        self._flood_cache.clear()

    def add_member(self, port: int, agg_id: int) -> None:
        """
        Add aggregation ID C{agg_id} to aggregation port C{port}, so floods
        reach it.  Adding a present member does nothing.
        """
        state = self._port(port)
        if not state.aggregation:
            raise BridgeError(f"port {port} ({state.name}) is not an aggregation port")
        if not isinstance(agg_id, int):
            raise BridgeError(f"aggregation ID must be an int, got {agg_id!r}")
        if agg_id in state.members:
            return
        if len(state.members) >= self._max_members:
            raise BridgeError(
                f"port {port} ({state.name}) already has {self._max_members} members; "
                "remove one or raise max_members"
            )
        state.members[agg_id] = None
        self._flood_cache.clear()

    def remove_member(self, port: int, agg_id: int) -> None:
        """
        Remove a member and every FDB entry learned through it or
        source-forwarded to it, static ones too.

        @raise BridgeError: the member does not exist, or layer-3 entries
            still point at it.
        """
        state = self._port(port)
        if agg_id not in state.members:
            raise BridgeError(f"port {port} ({state.name}) has no member {agg_id!r}")
        if any(entry.egress == (port, agg_id) for entry in self.l3.references(port)):
            raise BridgeError(
                f"layer-3 entries point at member {agg_id} of port {port} ({state.name}); "
                "remove or modify them first"
            )
        del state.members[agg_id]
        self._remove_entries(lambda entry: _uses_port(entry, port, agg_id, any_member=False))
        self._flood_cache.clear()

    def ports(self) -> list[dict]:
        """Return each port's number, name, settings and members as plain data."""
        return [
            {
                "port": state.number,
                "name": state.name,
                "aggregation": state.aggregation,
                "access_controlled": state.access_controlled,
                "l3_learning": state.l3_learning,
                "split_horizon": state.split_horizon,
                "members": list(state.members),
            }
            for state in self._ports.values()
        ]

    # -- the per-frame path ------------------------------------------------

    def process(
        self, port: int, agg_id: int | None, frame: bytes, now: float
    ) -> tuple[Egress, ...]:
        """
        Learn from one frame and return its egress pairs.

        The frame is forwarded unchanged to each returned C{(port, agg_id)};
        an empty result means it was dropped, and the counter of its drop
        reason was incremented.
        Malformed frames are counted, never raised.

        When the FDB is full, a new station evicts the dynamic entry learned
        longest ago; static entries are never evicted, and if every entry is
        static the station is forwarded without being learned.  An evicted
        visitor is recognised again on its next addressed frame.

        @param agg_id: the aggregation ID on an aggregation port, else
            C{None}.  A frame from an ID that is not a member is dropped.
        @param frame: C{bytes}; a C{bytearray} or C{memoryview} is copied
            to C{bytes} first.
        @param now: the time in seconds, on the same clock as L{expire}.
        @raise BridgeError: C{port} is not a port of this bridge, C{agg_id}
            does not fit the port's kind, or C{frame} is not a bytes-like
            object; these are caller errors.
        """
        counters = self._port_counters.get(port)
        if counters is None:
            raise self._unknown_port(port)
        try:
            entry = self._fdb.get(frame[6:12])
        except TypeError:
            # A slice of a bytearray or writable memoryview is unhashable.
            # The exception costs nothing on the usual bytes path.
            frame = _as_frame(frame)
            entry = self._fdb.get(frame[6:12])
        counters[_RECEIVED] += 1
        if (
            entry is None
            or not entry.settled
            or entry.port != port
            or entry.agg_id != agg_id
            or frame[0] & 1
            or not _ETHERNET_HEADER <= len(frame) <= self._max_frame_size
        ):
            return self._process_inspected(port, agg_id, frame, now, counters)

        # A unicast frame from a known, settled station on its own port.
        # NOTE: a station that never sends IPv4 stays unsettled and takes the
        # inspected path (one classification) for every frame.
        entry.last_seen = now
        if not entry.authorised:
            return self._drop(DropReason.UNAUTHORISED_SOURCE, counters)
        out = entry.src_egress
        if out is not None:
            counters[_SOURCE_FORWARDED] += 1
            return out

        # The common case of _forward_unicast, inlined: the call measured
        # about 30 ns of the 440 ns a known-unicast decision takes
        # (benchmarks/bench_bridge.py, 2 vCPU).  A destination on the
        # ingress port (same segment, or another member) takes the call.
        target = self._fdb.get(frame[0:6])
        if target is not None and target.authorised and target.port != port:
            counters[_FORWARDED] += 1
            return target.egress
        return self._forward_unicast(port, agg_id, frame[0:6], counters)

    def _forward_unicast(
        self, port: int, agg_id: int | None, destination: bytes, counters: list[int]
    ) -> tuple[Egress, ...]:
        target = self._fdb.get(destination)
        if target is None:
            return self._flood(port, agg_id, counters)
        if target.port == port:
            if target.agg_id == agg_id:
                return self._drop(DropReason.SAME_SEGMENT, counters)
            if self._ports[port].split_horizon:
                return self._drop(DropReason.SPLIT_HORIZON, counters)
        if not target.authorised:
            return self._drop(DropReason.UNAUTHORISED_DESTINATION, counters)
        counters[_FORWARDED] += 1
        return target.egress

    def _process_inspected(
        self, port: int, agg_id: int | None, frame: bytes, now: float, counters: list[int]
    ) -> tuple[Egress, ...]:
        """
        Process a frame that learning must look at: check it, classify it,
        learn from it, then forward it.
        """
        if type(frame) is not bytes:
            # Learned MACs must be bytes, never views into a caller's buffer.
            frame = _as_frame(frame)
        size = len(frame)
        if size < _ETHERNET_HEADER:
            return self._drop(DropReason.RUNT, counters)
        if size > self._max_frame_size:
            return self._drop(DropReason.OVERSIZED, counters)
        state = self._ports[port]
        if (agg_id is None) == state.aggregation:
            raise BridgeError(
                f"aggregation ID {agg_id!r} does not fit port {port} ({state.name}): "
                "an aggregation port needs an int, a plain port None"
            )
        if agg_id is not None and agg_id not in state.members:
            return self._drop(DropReason.UNKNOWN_MEMBER, counters)
        source = frame[6:12]
        if source[0] & 1 or source == _ZERO_MAC:
            return self._drop(DropReason.INVALID_SOURCE, counters)
        destination = frame[0:6]
        if destination[0:5] == _RESERVED_PREFIX and destination[5] < 0x10:
            return self._drop(DropReason.RESERVED_GROUP, counters)

        entry = self._fdb.get(source)
        if entry is not None and entry.static and (entry.port, entry.agg_id) != (port, agg_id):
            # A static entry never moves.  Forward by destination only, since
            # the station is not where its source egress was set up for.
            self._stats["static_conflicts"] += 1
            if state.access_controlled:
                return self._drop(DropReason.UNAUTHORISED_SOURCE, counters)
            entry = None
        elif (
            state.access_controlled
            and source not in self._authorised
            and (entry is None or entry.port != port or entry.agg_id != agg_id)
        ):
            facts = self._classify(frame) if state.l3_learning else None
            if facts is None or not self._makes_visitor(state, port, agg_id, facts):
                # The station stays unauthorised here, so it must not take
                # the entry of a station learned elsewhere, nor evict one.
                if entry is not None:
                    return self._drop(DropReason.UNAUTHORISED_SOURCE, counters)
                if len(self._fdb) >= self._max_entries:
                    self._stats["not_learned_full"] += 1
                    return self._drop(DropReason.UNAUTHORISED_SOURCE, counters)
            entry = self._learn(state, port, agg_id, frame, source, entry, now, facts)
        else:
            entry = self._learn(state, port, agg_id, frame, source, entry, now)

        if entry is not None:
            if not entry.authorised:
                return self._drop(DropReason.UNAUTHORISED_SOURCE, counters)
            out = entry.src_egress
            if out is not None:
                counters[_SOURCE_FORWARDED] += 1
                return out
        elif state.access_controlled and source not in self._authorised:
            # Not learned (the FDB is full of static entries), so nothing
            # else vouches for the station.
            return self._drop(DropReason.UNAUTHORISED_SOURCE, counters)
        if destination[0] & 1:
            return self._flood(port, agg_id, counters)
        return self._forward_unicast(port, agg_id, destination, counters)

    def _flood(self, port: int, agg_id: int | None, counters: list[int]) -> tuple[Egress, ...]:
        out = self._flood_cache.get((port, agg_id))
        if out is None:
            # Frames from unknown members are dropped before this, so the
            # cache holds at most one list per port and member.
            out = self._flood_targets(port, agg_id)
            self._flood_cache[(port, agg_id)] = out
        if not out:
            return self._drop(DropReason.NO_EGRESS, counters)
        counters[_FLOODED] += 1
        return out

    def _flood_targets(self, port: int, agg_id: int | None) -> tuple[Egress, ...]:
        out: list[Egress] = []
        for number, state in self._ports.items():
            if not state.aggregation:
                if number != port:
                    out.append((number, None))
            elif number != port:
                out.extend((number, member) for member in state.members)
            elif not state.split_horizon:
                out.extend((number, member) for member in state.members if member != agg_id)
        return tuple(out)

    def _drop(self, reason: DropReason, counters: list[int]) -> tuple[Egress, ...]:
        self._drops[reason] += 1
        counters[_DROPPED] += 1
        return _NOTHING

    # -- learning ------------------------------------------------------------

    def _learn(
        self,
        state: _Port,
        port: int,
        agg_id: int | None,
        frame: bytes,
        source: bytes,
        entry: FdbEntry | None,
        now: float,
        facts: tuple[int, int, int, int, int] | None = None,
    ) -> FdbEntry | None:
        """
        Apply the learning rules to the frame's source and return its entry,
        or C{None} when a full FDB of static entries left no room.

        @param facts: what L{classify} returned for the frame, when the
            caller already classified it.
        """
        if entry is not None and (entry.port != port or entry.agg_id != agg_id):
            self._move(entry, port, agg_id)
            entry = None
        if entry is None:
            entry = self._add_dynamic(state, port, agg_id, source, now)
            if entry is None:
                return None
        else:
            entry.last_seen = now
            if entry.static:
                return entry
        if not state.l3_learning:
            return entry

        if facts is None:
            facts = self._classify(frame)
            if facts is None:
                return entry
        _, sender_ip, dhcp_type, dhcp_client_ip, dhcp_requested_ip = facts

        if dhcp_type == DHCP_DISCOVER:
            self._reset(entry, state, ClearReason.DHCP_DISCOVER)
        elif dhcp_type == DHCP_REQUEST and not dhcp_client_ip:
            # A rebooting client asking to keep a foreign address must reach
            # the server of that address's subnet, which alone can confirm
            # it.  Otherwise the client is taking a local address.
            if self._foreign_egress(state, port, agg_id, dhcp_requested_ip) is not None:
                self._learn_address(entry, state, dhcp_requested_ip)
            else:
                self._reset(entry, state, ClearReason.DHCP_REQUEST_NO_ADDRESS)
        elif dhcp_type == DHCP_REQUEST:
            # The client's own address, even for a settled station: the
            # request must reach the server of that address's subnet.
            if is_unicast_host_address(dhcp_client_ip):
                self._learn_address(entry, state, dhcp_client_ip)
        elif not entry.settled and sender_ip and is_unicast_host_address(sender_ip):
            self._learn_address(entry, state, sender_ip)
        return entry

    def _classify(self, frame: bytes) -> tuple[int, int, int, int, int] | None:
        """
        Return the layer-3 facts of a frame, or C{None} for a malformed
        header, which is counted; the frame is then bridged without layer-3
        facts, as a plain bridge would.
        """
        try:
            return classify(frame)
        except DecodeError as e:
            self._malformed[e.protocol] = self._malformed.get(e.protocol, 0) + 1
            return None

    def _makes_visitor(
        self, state: _Port, port: int, agg_id: int | None, facts: tuple[int, int, int, int, int]
    ) -> bool:
        """Return whether learning from a frame with these facts makes its source a visitor."""
        _, sender_ip, dhcp_type, dhcp_client_ip, dhcp_requested_ip = facts
        if dhcp_type == DHCP_DISCOVER:
            return False
        if dhcp_type == DHCP_REQUEST:
            return (
                self._foreign_egress(state, port, agg_id, dhcp_client_ip or dhcp_requested_ip)
                is not None
            )
        return self._foreign_egress(state, port, agg_id, sender_ip) is not None

    def _foreign_egress(
        self, state: _Port, port: int, agg_id: int | None, address: int
    ) -> Egress | None:
        """
        Return the egress towards the home subnet of a station at C{port},
        C{agg_id} with IPv4 C{address}, or C{None} when it has none there.

        The station is reached over the path towards its own home when the
        layer-3 match is the ingress itself, or another member of a
        split-horizon ingress port, which forwards nothing between members.
        """
        if not is_unicast_host_address(address):
            return None
        hit = self.l3.lookup(address)
        if hit is None or hit[0] != port:
            return hit
        if hit[1] == agg_id or state.split_horizon:
            return None
        return hit

    def _add_dynamic(
        self, state: _Port, port: int, agg_id: int | None, mac: bytes, now: float
    ) -> FdbEntry | None:
        if len(self._fdb) >= self._max_entries and not self._evict_oldest():
            self._stats["not_learned_full"] += 1
            return None
        entry = FdbEntry(mac, port, agg_id, now)
        entry.authorised = self._default_authorisation(state, mac)
        entry.settled = not state.l3_learning
        self._fdb[mac] = entry
        self._dynamic[mac] = None
        self._stats["learned"] += 1
        if self._next_deadline is None:
            self._next_deadline = now + self.aging_time
        return entry

    def _default_authorisation(self, state: _Port, mac: bytes) -> bool:
        return not state.access_controlled or mac in self._authorised

    def _learn_address(self, entry: FdbEntry, state: _Port, address: int) -> None:
        """
        Look a station's address up in the layer-3 database and set or clear
        its source egress to match.
        """
        hit = self._foreign_egress(state, entry.port, entry.agg_id, address)
        previous_ip = entry.ip
        entry.ip = address
        entry.settled = True
        old = entry.src_egress

        if hit is not None:
            if old is not None and old[0] == hit:
                return
            if old is not None:
                self._emit(SourceCleared(entry.mac, ClearReason.CHANGED))
            entry.src_egress = (hit,)
            # Entries learned through layer-3 knowledge are always
            # authorised, so a visitor is never blocked at a foreign port.
            entry.authorised = True
            self._emit(RoamerDetected(entry.mac, address, entry.port, entry.agg_id, hit[0], hit[1]))
            return

        if old is not None:
            entry.src_egress = None
            entry.authorised = self._default_authorisation(state, entry.mac)
            self._emit(SourceCleared(entry.mac, ClearReason.HOME))
        if address != previous_ip:
            self._emit(AddressLearned(entry.mac, address, entry.port, entry.agg_id))

    def _reset(self, entry: FdbEntry, state: _Port, reason: ClearReason) -> None:
        """
        Forget a station's address and source egress, after a DHCP DISCOVER
        or a DHCP REQUEST without an address.
        """
        if entry.src_egress is not None:
            entry.src_egress = None
            self._emit(SourceCleared(entry.mac, reason))
        entry.ip = 0
        entry.settled = False
        entry.authorised = self._default_authorisation(state, entry.mac)

    def _move(self, entry: FdbEntry, port: int, agg_id: int | None) -> None:
        self._stats["moved"] += 1
        self._emit(StationMoved(entry.mac, entry.port, entry.agg_id, port, agg_id))
        self._delete(entry, ClearReason.MOVED)

    def _evict_oldest(self) -> bool:
        for mac in self._dynamic:
            self._stats["evicted"] += 1
            self._delete(self._fdb[mac], ClearReason.EVICTED)
            return True
        return False

    def _delete(self, entry: FdbEntry, reason: ClearReason) -> None:
        del self._fdb[entry.mac]
        if not entry.static:
            del self._dynamic[entry.mac]
            if entry.src_egress is not None:
                self._emit(SourceCleared(entry.mac, reason))

    def _remove_entries(self, predicate) -> int:
        doomed = [entry for entry in self._fdb.values() if predicate(entry)]
        for entry in doomed:
            self._delete(entry, ClearReason.REMOVED)
        return len(doomed)

    def _unsettle_all(self) -> None:
        # The layer-3 database changed: look every dynamic station up again
        # on its next addressed frame.
        for mac in self._dynamic:
            entry = self._fdb[mac]
            if self._ports[entry.port].l3_learning:
                entry.settled = False

    # -- events -----------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if len(self._events) == self._events.maxlen:
            self._stats["events_dropped"] += 1
        self._events.append(event)

    def has_events(self) -> bool:
        """Return whether events are queued, without taking them."""
        return bool(self._events)

    def pop_events(self) -> list[Event]:
        """Return the queued events, oldest first, and empty the queue."""
        events = list(self._events)
        self._events.clear()
        return events

    # -- aging --------------------------------------------------------------

    def expire(self, now: float) -> int:
        """
        Remove dynamic entries not refreshed for C{aging_time} seconds and
        return how many were removed.  Call it again at L{next_deadline}.
        """
        limit = now - self.aging_time
        doomed = [mac for mac in self._dynamic if self._fdb[mac].last_seen <= limit]
        for mac in doomed:
            self._delete(self._fdb[mac], ClearReason.AGED)
        self._stats["expired"] += len(doomed)
        if self._dynamic:
            oldest = min(self._fdb[mac].last_seen for mac in self._dynamic)
            self._next_deadline = oldest + self.aging_time
        else:
            self._next_deadline = None
        return len(doomed)

    def next_deadline(self) -> float | None:
        """
        Return when L{expire} next has work, or C{None} with no dynamic
        entries.  The value may be early (an entry refreshed since
        the last L{expire} lives longer) but never late.
        """
        return self._next_deadline

    # -- static entries, authorisation, source forwarding -------------------------

    def add_static(
        self,
        mac: bytes | str,
        port: int,
        agg_id: int | None = None,
        *,
        src_port: int | None = None,
        src_agg_id: int | None = None,
        authorised: bool = True,
    ) -> None:
        """
        Add or replace a static entry: frames to C{mac} go to C{port},
        C{agg_id}, and with C{src_port} every frame from C{mac} arriving
        there goes to C{src_port}, C{src_agg_id}.  Static entries never age,
        move or get evicted, and no frame changes them.

        @raise BridgeError: an egress does not exist, the source egress is
            the station's own port and ID or another member of its
            split-horizon port, or the FDB is full of static entries.
        """
        mac = _as_mac(mac)
        self._check_egress(port, agg_id)
        src_egress = None
        if src_port is not None:
            self._check_egress(src_port, src_agg_id)
            if (src_port, src_agg_id) == (port, agg_id):
                raise BridgeError(
                    f"source egress ({src_port}, {src_agg_id}) of {_format_mac(mac)} is its own "
                    "port and ID, which would send its frames back; give another egress"
                )
            if src_port == port and self._ports[port].split_horizon:
                raise BridgeError(
                    f"source egress ({src_port}, {src_agg_id}) of {_format_mac(mac)} is another "
                    f"member of split-horizon port {port}, which forwards nothing between "
                    "members; give an egress on another port"
                )
            src_egress = ((src_port, src_agg_id),)
        existing = self._fdb.get(mac)
        if existing is not None:
            self._delete(existing, ClearReason.REMOVED)
        elif len(self._fdb) >= self._max_entries and not self._evict_oldest():
            raise BridgeError(
                f"FDB of {self.name} is full of {self._max_entries} static entries; "
                "remove one or raise max_entries"
            )
        entry = FdbEntry(mac, port, agg_id, 0.0)
        entry.static = True
        entry.settled = True
        entry.authorised = authorised
        entry.src_egress = src_egress
        self._fdb[mac] = entry

    def remove_static(self, mac: bytes | str) -> None:
        """
        Remove a static entry; the station is learned again from its next
        frame.

        @raise BridgeError: C{mac} has no static entry.
        """
        mac = _as_mac(mac)
        entry = self._fdb.get(mac)
        if entry is None or not entry.static:
            raise BridgeError(f"{_format_mac(mac)} has no static entry in {self.name}")
        del self._fdb[mac]

    def clear_source(self, mac: bytes | str) -> bool:
        """
        Clear a station's source egress and return whether it had one.

        Until the station is learned again (after a move, aging or DHCP),
        its frames are bridged by destination, except on an
        access-controlled port, where they are dropped unless L{authorise}
        named the station.
        """
        entry = self._fdb.get(_as_mac(mac))
        if entry is None or entry.src_egress is None:
            return False
        entry.src_egress = None
        if not entry.static:
            entry.authorised = self._default_authorisation(self._ports[entry.port], entry.mac)
            self._emit(SourceCleared(entry.mac, ClearReason.REMOVED))
        return True

    def authorise(self, mac: bytes | str) -> None:
        """
        Authorise a station on access-controlled ports, now and whenever it
        is learned again, until L{deauthorise}.

        @raise BridgeError: the set of authorised stations already contains
            C{max_entries} addresses.
        """
        mac = _as_mac(mac)
        if mac not in self._authorised and len(self._authorised) >= self._max_entries:
            raise BridgeError(
                f"{self.name} already authorises {self._max_entries} stations; "
                "deauthorise stations that left"
            )
        self._authorised.add(mac)
        entry = self._fdb.get(mac)
        if entry is not None and not entry.static:
            entry.authorised = True

    def deauthorise(self, mac: bytes | str) -> None:
        """
        Withdraw L{authorise}: a station on an access-controlled port is
        dropped again, unless it is a visitor.
        """
        mac = _as_mac(mac)
        self._authorised.discard(mac)
        entry = self._fdb.get(mac)
        if entry is not None and not entry.static and entry.src_egress is None:
            entry.authorised = self._default_authorisation(self._ports[entry.port], mac)

    # -- read-only views -----------------------------------------------------

    def fdb_rows(self, now: float | None = None) -> list[dict]:
        """
        Return the FDB as plain data, one dict per station, with C{age} in
        seconds when C{now} is given.
        """
        rows = []
        for entry in self._fdb.values():
            src = entry.src_egress[0] if entry.src_egress is not None else (None, None)
            row = {
                "mac": _format_mac(entry.mac),
                "port": entry.port,
                "port_name": self._ports[entry.port].name,
                "agg_id": entry.agg_id,
                "src_port": src[0],
                "src_agg_id": src[1],
                "ip": _format_ip(entry.ip),
                "authorised": entry.authorised,
                "static": entry.static,
                "last_seen": None if entry.static else entry.last_seen,
            }
            if now is not None:
                row["age"] = None if entry.static else now - entry.last_seen
            rows.append(row)
        return rows

    def l3_rows(self) -> list[dict]:
        """Return the layer-3 database as plain data, in lookup order."""
        return [
            {
                "network": str(entry.network),
                "port": entry.port,
                "agg_id": entry.agg_id,
                "match": "positive" if entry.positive else "negative",
            }
            for entry in self.l3.entries()
        ]

    def counters(self) -> dict:
        """
        Return every counter as plain data: per port (by name), per drop
        reason, FDB activity, and malformed headers per protocol (frames
        bridged without layer-3 facts).
        """
        return {
            "ports": {
                self._ports[number].name: {
                    counter.name.lower(): values[counter] for counter in PortCounter
                }
                for number, values in self._port_counters.items()
            },
            "drops": {reason.name.lower(): self._drops[reason] for reason in DropReason},
            "fdb": dict(self._stats, entries=len(self._fdb)),
            "malformed": dict(self._malformed),
        }

    def snapshot(self, now: float | None = None) -> dict:
        """Return ports, FDB, layer-3 database and counters as one plain dict."""
        return {
            "name": self.name,
            "ports": self.ports(),
            "fdb": self.fdb_rows(now),
            "l3": self.l3_rows(),
            "counters": self.counters(),
        }

    def lookup(self, mac: bytes | str) -> FdbEntry | None:
        """
        Return the FDB entry of C{mac}, or C{None}; do not change it.

        Any C{bytes} value is accepted, so a caller may pass a slice of a
        runt frame: one that is not 6 bytes long has no entry.
        """
        if isinstance(mac, bytes):
            return self._fdb.get(mac)
        return self._fdb.get(_as_mac(mac))

    # -- checks ---------------------------------------------------------------------

    def _port(self, port: int) -> _Port:
        state = self._ports.get(port)
        if state is None:
            raise self._unknown_port(port)
        return state

    def _unknown_port(self, port: object) -> BridgeError:
        return BridgeError(f"port {port!r} is not a port of {self.name}; add it with add_port()")

    def _check_egress(self, port: int, agg_id: int | None) -> None:
        state = self._port(port)
        if state.aggregation and not isinstance(agg_id, int):
            raise BridgeError(
                f"port {port} ({state.name}) is an aggregation port; give an int aggregation ID"
            )
        if state.aggregation and agg_id not in state.members:
            raise BridgeError(
                f"port {port} ({state.name}) has no member {agg_id}; add it with add_member()"
            )
        if not state.aggregation and agg_id is not None:
            raise BridgeError(
                f"port {port} ({state.name}) is a plain port; its aggregation ID must be None"
            )


def _uses_port(entry: FdbEntry, port: int, agg_id: int | None, *, any_member: bool) -> bool:
    """Return whether an entry is at, or source-forwards to, C{port} (and C{agg_id})."""
    places = [(entry.port, entry.agg_id)]
    if entry.src_egress is not None:
        places.append(entry.src_egress[0])
    return any(p == port and (any_member or a == agg_id) for p, a in places)
