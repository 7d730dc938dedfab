# -*- test-case-name: tests.daemons.test_stages -*-
"""
Tests for L{roaming.tap.stages}: roam stage events carry named fields.
"""

from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher

from roaming.bridge import ClearReason, RoamerDetected, SourceCleared, StationMoved
from roaming.tap.stages import StageLog

MAC = bytes.fromhex("02aa00000001")


class Capture:
    """
    Collect the events of the roam stage logger while in a C{with} block.
    """

    def __enter__(self):
        self.events = []
        globalLogPublisher.addObserver(self._observe)
        return self.events

    def _observe(self, event):
        if event.get("log_namespace") == "roaming.stages":
            self.events.append(event)

    def __exit__(self, *exc_info):
        globalLogPublisher.removeObserver(self._observe)


def test_emit_has_named_fields():
    clock = Clock()
    clock.advance(12.5)
    stages = StageLog("ap1", clock)
    with Capture() as events:
        stages.emit("station-connected", MAC, vsc=1)
    (event,) = events
    assert event["roam_stage"] == "station-connected"
    assert event["node"] == "ap1"
    assert event["mac"] == "02:aa:00:00:00:01"
    assert event["timestamp"] == 12.5
    assert event["vsc"] == 1
    assert event["details"] == "vsc=1"
    assert event["log_level"] == LogLevel.info
    assert stages.counts["station-connected"] == 1


def test_roamer_event_becomes_stage():
    stages = StageLog("sc1", Clock())
    with Capture() as events:
        stages.bridge_event(RoamerDetected(MAC, 0x0A020032, 4, None, 3, 1), vlan=0)
    (event,) = events
    assert event["roam_stage"] == "roamer-detected"
    assert event["ip"] == "10.2.0.50"
    assert (event["src_port"], event["src_agg_id"]) == (3, 1)


def test_source_cleared_stage():
    stages = StageLog("sc1", Clock())
    with Capture() as events:
        stages.bridge_event(SourceCleared(MAC, ClearReason.AGED))
    assert events[0]["roam_stage"] == "source-cleared"
    assert events[0]["reason"] == "aged"


def test_station_moves_logged_at_powers_of_two():
    stages = StageLog("ap1", Clock())
    with Capture() as events:
        for _ in range(9):
            stages.bridge_event(StationMoved(MAC, 1, None, 2, None))
    assert [event["moves"] for event in events] == [1, 2, 4, 8]
    assert stages.counts["station-moved"] == 9
