# -*- test-case-name: tests.daemons.test_stages -*-
"""
Time stamps of the stages of a roam, as log events.

Each stage is one L{twisted.logger} event with the fields C{roam_stage}
(the stage name), C{node}, C{mac} (text form), C{timestamp} (the reactor's
C{seconds()}, so every daemon of one host shares the clock) and stage
details. A lab or an operator collects them with C{twist --log-format=json}
or from the text log and lines them up per client:

  - C{station-connected}: the radio reported the association (AP);
  - C{roamer-detected}: the bridge saw the first frame of a visitor and set
    its source egress (AP and SC);
  - C{message-sent} and C{message-received}: a control message about the
    client, with its C{message} type and C{peer};
  - C{first-frame-back}: the first frame delivered to a station after it
    associated (AP only: the SC sets no such watch).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.logger import Logger

from roaming.bridge import RoamerDetected, SourceCleared, StationMoved

__all__ = ["MAX_TRACKED_MOVES", "STAGES", "StageLog", "format_mac"]

# Bound on the stations whose moves are counted for log rate limiting.
MAX_TRACKED_MOVES = 4096

STAGES = (
    "station-connected",
    "roamer-detected",
    "message-sent",
    "message-received",
    "first-frame-back",
    "source-cleared",
    "station-moved",
)


def format_mac(mac: bytes) -> str:
    """
    Format 6 bytes as C{aa:bb:cc:dd:ee:ff}.
    """
    return mac.hex(":")


# A module-level logger keeps its namespace; a Logger class attribute would
# take the class's name instead.
_log = Logger(namespace="roaming.stages")


class StageLog:
    """
    Emits roam stage events, in the log namespace C{roaming.stages}, for
    one node, and counts them by stage.
    """

    def __init__(self, node: str, clock: Any) -> None:
        self.node = node
        self._clock = clock
        self.counts = dict.fromkeys(STAGES, 0)
        self._moves: dict[bytes, int] = {}

    def emit(self, stage: str, mac: bytes, **details: Any) -> None:
        """
        Log stage C{stage} for station C{mac}, stamped now.
        """
        self.counts[stage] += 1
        _log.info(
            "Roam stage {roam_stage} for {mac} on {node} at {timestamp:.6f} {details}",
            roam_stage=stage,
            node=self.node,
            mac=format_mac(mac),
            timestamp=self._clock.seconds(),
            # The same details as separate fields for JSON logs, and as one
            # text for the text log.
            details=" ".join(f"{key}={value}" for key, value in details.items()),
            **details,
        )

    def bridge_event(self, event: Any, vlan: int = 0) -> None:
        """
        Log the roam stage of a bridge event, if it is one.
        """
        if isinstance(event, RoamerDetected):
            self.emit(
                "roamer-detected",
                event.mac,
                ip=str(ipaddress.IPv4Address(event.ip)),
                vlan=vlan,
                port=event.port,
                src_port=event.src_port,
                src_agg_id=event.src_agg_id,
            )
        elif isinstance(event, SourceCleared):
            self.emit("source-cleared", event.mac, reason=str(event.reason), vlan=vlan)
        elif isinstance(event, StationMoved):
            # A station seen on two ports in turn (a loop, or a wired host
            # behind two paths) moves on every frame: log the 1st, 2nd, 4th,
            # 8th... move of each station only.
            moves = self._moves.get(event.mac, 0) + 1
            if len(self._moves) < MAX_TRACKED_MOVES or event.mac in self._moves:
                self._moves[event.mac] = moves
            if moves & (moves - 1) == 0:
                self.emit(
                    "station-moved",
                    event.mac,
                    vlan=vlan,
                    old_port=event.old_port,
                    old_agg_id=event.old_agg_id,
                    port=event.port,
                    agg_id=event.agg_id,
                    moves=moves,
                )
            else:
                self.counts["station-moved"] += 1
