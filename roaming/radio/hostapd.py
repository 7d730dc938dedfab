# -*- test-case-name: tests.radio.test_hostapd -*-
"""
Sans-IO client of hostapd's control interface.

hostapd serves its control interface on a UNIX datagram socket, by default
C{/var/run/hostapd/<interface>}. A client binds a socket path of its own and
sends one command per datagram. hostapd replies to every command with one
datagram: C{PONG} for C{PING}, C{OK} or C{FAIL} for most others, and for
C{STA-FIRST} and C{STA-NEXT <mac>} a station's MAC address on the first
line followed by C{key=value} lines, or an empty reply (C{FAIL} in some
versions) after the last station. After C{ATTACH}, hostapd also sends
unsolicited event messages to the client, each prefixed with its priority in
angle brackets, such as C{<3>AP-STA-CONNECTED 02:00:00:00:00:01}. Behind
hostapd's global control interface the prefix is followed by
C{IFNAME=<interface> }.

Theory of operation of L{HostapdControl}:

    DETACHED --start / retry deadline--> ATTACHING (sends ATTACH)
    ATTACHING --OK--> ATTACHED (sends STA-FIRST to list the stations)
    ATTACHING --FAIL--> DETACHED (retries after retry_interval)
    ATTACHED --ping deadline--> ATTACHED (sends PING)
    any --reply timeout or send failure--> DETACHED (retries)

hostapd drops its attached clients when it restarts, so a missing reply
means the client must attach again. After every attach the client walks the
station list with STA-FIRST and STA-NEXT and reports the difference from
what it reported before, so no station event is lost across a restart.

Nothing here reads the clock or touches a socket: the adapter passes C{now}
(seconds, any monotonic origin) and sends what L{HostapdControl.data_to_send}
returns.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from dataclasses import dataclass

from roaming.errors import DecodeError

__all__ = [
    "MAX_MESSAGE_SIZE",
    "ControlState",
    "HostapdControl",
    "StationConnected",
    "StationDisconnected",
    "format_mac",
    "parse_event",
    "parse_mac",
]

#: Largest datagram hostapd sends on its control interface (its reply
#: buffer is 4096 bytes); larger input is rejected as malformed.
MAX_MESSAGE_SIZE = 4096

#: Bound on commands awaiting a reply. hostapd replies to each command at
#: once, so more than a few outstanding means it is gone.
MAX_PENDING = 8

_EVENT = re.compile(
    r"<(?P<level>[0-9])>(?:IFNAME=(?P<ifname>\S+) )?(?P<name>\S+)(?: (?P<args>.*))?"
)
_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")

_STATION_EVENTS = {"AP-STA-CONNECTED", "AP-STA-DISCONNECTED"}


@dataclass(frozen=True, slots=True)
class StationConnected:
    """
    A station associated (or re-associated) with the access point.
    """

    mac: bytes
    """The station's 6-byte MAC address."""


@dataclass(frozen=True, slots=True)
class StationDisconnected:
    """
    A station left the access point: disassociated, deauthenticated or
    timed out.
    """

    mac: bytes
    """The station's 6-byte MAC address."""


StationEvent = StationConnected | StationDisconnected


class ControlState(enum.Enum):
    """
    Attachment state of a control-interface client.
    """

    DETACHED = "detached"
    ATTACHING = "attaching"
    ATTACHED = "attached"


def parse_mac(text: str) -> bytes:
    """
    Convert a colon-separated MAC address such as C{02:00:00:00:00:01} into
    6 bytes.

    @raise DecodeError: if C{text} is not six colon-separated hex octets.
    """
    if not _MAC.fullmatch(text):
        raise DecodeError("hostapd", f"invalid MAC address {text!r}: expected six hex octets")
    return bytes.fromhex(text.replace(":", ""))


def format_mac(mac: bytes) -> str:
    """
    Format a 6-byte MAC address the way hostapd prints it (lower case, colons).
    """
    if len(mac) != 6:
        raise ValueError(f"MAC address must be 6 bytes, got {len(mac)}: {mac.hex()}")
    return ":".join(f"{octet:02x}" for octet in mac)


def _decode_text(data: bytes) -> str:
    if len(data) > MAX_MESSAGE_SIZE:
        raise DecodeError(
            "hostapd", f"message of {len(data)} bytes exceeds the {MAX_MESSAGE_SIZE}-byte maximum"
        )
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as error:
        raise DecodeError("hostapd", f"message is not ASCII text: {error}") from None


def parse_event(data: bytes) -> StationEvent | None:
    """
    Parse one unsolicited event message.

    @return: the station event, or L{None} for a well-formed event that is not
        about station association (hostapd sends many kinds).
    @raise DecodeError: if C{data} is not an event message, or a station
        event lacks a valid MAC address.
    """
    text = _decode_text(data).rstrip("\n")
    match = _EVENT.fullmatch(text)
    if match is None:
        raise DecodeError("hostapd", f"not an event message: {text[:80]!r}")
    name = match["name"]
    if name not in _STATION_EVENTS:
        return None

    # hostapd appends optional fields after the address, such as
    # "p2p_dev_addr=..." or "keyid=...": only the first field is the station.
    args = (match["args"] or "").split(" ")
    mac = parse_mac(args[0])
    if name == "AP-STA-CONNECTED":
        return StationConnected(mac)
    return StationDisconnected(mac)


def _is_event(data: bytes) -> bool:
    return data[:1] == b"<"


class HostapdControl:
    """
    State of one client of a hostapd control interface.

    Feed it every received datagram with L{receive}, call L{tick} at
    L{next_deadline}, and send every command that L{data_to_send} returns.

    @ivar state: the current L{ControlState}.
    @ivar stations: MAC addresses of the stations reported as connected.
    """

    def __init__(
        self,
        *,
        ping_interval: float = 5.0,
        reply_timeout: float = 1.0,
        retry_interval: float = 1.0,
        max_stations: int = 4096,
    ) -> None:
        """
        @param ping_interval: seconds between liveness checks while attached.
        @param reply_timeout: seconds to wait for any reply before deciding
            hostapd is gone and attaching again.
        @param retry_interval: seconds between attach attempts.
        @param max_stations: bound on the station table; a station list walk
            stops at this many entries.
        """
        self.state = ControlState.DETACHED
        self.stations: set[bytes] = set()
        self._ping_interval = ping_interval
        self._reply_timeout = reply_timeout
        self._retry_interval = retry_interval
        self._max_stations = max_stations
        self._pending: deque[tuple[str, float]] = deque()
        self._outgoing: list[bytes] = []
        self._retry_at: float | None = None
        self._ping_at: float | None = None
        self._listed: set[bytes] | None = None

    def start(self, now: float) -> None:
        """
        Begin attaching.
        """
        self._attach(now)

    def data_to_send(self) -> list[bytes]:
        """
        Return and forget the commands queued for hostapd, one per datagram.
        """
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def next_deadline(self) -> float | None:
        """
        Return the time at which L{tick} must next be called, if any.
        """
        deadlines = [self._retry_at, self._ping_at]
        if self._pending:
            deadlines.append(self._pending[0][1] + self._reply_timeout)
        known = [deadline for deadline in deadlines if deadline is not None]
        return min(known) if known else None

    def detach(self) -> None:
        """
        Queue C{DETACH} and stop all timers, for a clean shutdown.
        """
        if self.state is not ControlState.DETACHED:
            self._outgoing.append(b"DETACH")
        self.state = ControlState.DETACHED
        self._pending.clear()
        self._retry_at = None
        self._ping_at = None

    def send_failed(self, now: float) -> None:
        """
        Record that sending a command failed (hostapd's socket is missing or
        refuses datagrams): hostapd is not running, so attach again later.
        """
        self._lose(now)

    def tick(self, now: float) -> None:
        """
        Run the timers that are due at C{now}.
        """
        if self._pending and now >= self._pending[0][1] + self._reply_timeout:
            self._lose(now)
        if self._retry_at is not None and now >= self._retry_at:
            self._attach(now)
        if self._ping_at is not None and now >= self._ping_at:
            self._ping_at = now + self._ping_interval
            self._command("PING", now)

    def receive(self, data: bytes, now: float) -> list[StationEvent]:
        """
        Process one datagram from hostapd.

        @return: the station events it causes, in order.
        @raise DecodeError: if the datagram is malformed; the state is
            unchanged and the caller drops it.
        """
        if _is_event(data):
            event = parse_event(data)
            if event is None:
                return []
            return self._apply([event])

        text = _decode_text(data)
        if not self._pending:
            raise DecodeError("hostapd", f"reply without a command: {text[:80]!r}")
        command, _ = self._pending.popleft()
        return self._on_reply(command, text, now)

    def _on_reply(self, command: str, text: str, now: float) -> list[StationEvent]:
        verb = command.split(" ", 1)[0]
        if verb == "ATTACH":
            return self._on_attach_reply(text, now)
        if verb in ("STA-FIRST", "STA-NEXT"):
            return self._on_station_reply(text, now)
        # hostapd replies PONG to PING. Any other reply still proves it is
        # alive, and the reply timeout is what detects a restart.
        return []

    def _on_attach_reply(self, text: str, now: float) -> list[StationEvent]:
        if text.strip() != "OK":
            self._lose(now)
            return []
        self.state = ControlState.ATTACHED
        self._ping_at = now + self._ping_interval
        self._listed = set()
        self._command("STA-FIRST", now)
        return []

    def _on_station_reply(self, text: str, now: float) -> list[StationEvent]:
        if self._listed is None:
            return []
        first_line = text.split("\n", 1)[0].strip()
        at_end = first_line in ("", "FAIL") or len(self._listed) >= self._max_stations
        if not at_end:
            try:
                mac = parse_mac(first_line)
            except DecodeError:
                # Abandon this walk; the next attach starts a new one.
                self._listed = None
                raise
            if mac in self._listed:
                # A station list that loops back on itself is over.
                at_end = True
            else:
                self._listed.add(mac)
                self._command(f"STA-NEXT {first_line}", now)
                if mac not in self.stations:
                    return self._apply([StationConnected(mac)])
                return []

        listed, self._listed = self._listed, None
        gone = sorted(self.stations - listed)
        return self._apply([StationDisconnected(mac) for mac in gone])

    def _apply(self, events: list[StationEvent]) -> list[StationEvent]:
        applied = []
        for event in events:
            if isinstance(event, StationConnected):
                if event.mac not in self.stations and len(self.stations) >= self._max_stations:
                    # NOTE: a full table drops the newcomer's event; the bound
                    # keeps a misbehaving hostapd from growing memory.
                    continue
                self.stations.add(event.mac)
                if self._listed is not None:
                    self._listed.add(event.mac)
            else:
                self.stations.discard(event.mac)
                if self._listed is not None:
                    self._listed.discard(event.mac)
            applied.append(event)
        return applied

    def _attach(self, now: float) -> None:
        self.state = ControlState.ATTACHING
        self._retry_at = None
        self._ping_at = None
        self._command("ATTACH", now)

    def _lose(self, now: float) -> None:
        self.state = ControlState.DETACHED
        self._pending.clear()
        self._listed = None
        self._ping_at = None
        self._retry_at = now + self._retry_interval

    def _command(self, command: str, now: float) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._lose(now)
            return
        self._pending.append((command, now))
        self._outgoing.append(command.encode("ascii"))
