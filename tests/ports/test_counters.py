"""
Tests for L{roaming.ports.counters}.
"""

from twisted.logger import Logger

from roaming.ports.counters import PortCounters, RepeatLimitedLog


def test_decode_errors_by_protocol():
    """
    Decode errors count per protocol label and as drops.
    """
    counters = PortCounters()
    counters.count_decode_error("gre")
    counters.count_decode_error("gre")
    counters.count_decode_error("ipv4")
    assert counters.rx_dropped == 3
    flat = counters.as_dict()
    assert flat["decode_errors.gre"] == 2
    assert flat["decode_errors.ipv4"] == 1
    assert flat["rx_frames"] == 0


def test_repeat_limited_log_powers_of_two():
    """
    A repeated error is logged on occurrences 1, 2, 4 and 8 of 10, each
    key counted on its own.
    """
    events = []
    log = RepeatLimitedLog(Logger(observer=events.append))
    for _ in range(10):
        log.error("read", "Read failed on {name}", name="rtap0")
    log.error("send", "Send failed on {name}", name="rtap0")
    read_counts = [event["occurrences"] for event in events if "Read" in event["log_format"]]
    assert read_counts == [1, 2, 4, 8]
    assert [event["log_format"] for event in events].count("Send failed on {name}") == 1
