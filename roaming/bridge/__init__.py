# -*- test-case-name: tests.bridge -*-
"""
The layer-3-aware bridge core: a sans-IO learning bridge whose layer-3
knowledge recognises a visiting station on its first frame and sends its
traffic towards its home subnet by source address.

See docs/bridge.md for how the learning and forwarding rules map to code.
"""

from roaming.bridge.core import Bridge, BridgeError, FdbEntry
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
from roaming.bridge.l3 import L3Database, L3DatabaseError, L3Entry, ap_entries, sc_entries

__all__ = [
    "AddressLearned",
    "Bridge",
    "BridgeError",
    "ClearReason",
    "DropReason",
    "Event",
    "FdbEntry",
    "L3Database",
    "L3DatabaseError",
    "L3Entry",
    "PortCounter",
    "RoamerDetected",
    "SourceCleared",
    "StationMoved",
    "ap_entries",
    "sc_entries",
]
