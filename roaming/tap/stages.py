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
    associated (AP), or after it was detected as a visitor (SC).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.logger import Logger

from roaming.bridge import RoamerDetected, SourceCleared, StationMoved

__all__ = ["STAGES", "StageLog", "format_mac"]

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


class StageLog:
    """
    Emits roam stage events for one node, and counts them by stage.
    """

    log = Logger(namespace="roaming.stages")

    def __init__(self, node: str, clock: Any) -> None:
        self.node = node
        self._clock = clock
        self.counts = dict.fromkeys(STAGES, 0)

    def emit(self, stage: str, mac: bytes, **details: Any) -> None:
        """
        Log stage C{stage} for station C{mac}, stamped now.
        """
        self.counts[stage] += 1
        self.log.info(
            "Roam stage {roam_stage} for {mac} on {node} at {timestamp:.6f}",
            roam_stage=stage,
            node=self.node,
            mac=format_mac(mac),
            timestamp=self._clock.seconds(),
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
            self.emit(
                "station-moved",
                event.mac,
                vlan=vlan,
                old_port=event.old_port,
                port=event.port,
                agg_id=event.agg_id,
            )
