# -*- test-case-name: tests.ports.test_counters -*-
"""
Per-port traffic counters and a log limiter for errors that repeat per frame.
"""

from dataclasses import dataclass, field

from twisted.logger import Logger

__all__ = ["PortCounters", "RepeatLimitedLog"]


@dataclass(slots=True)
class PortCounters:
    """
    Traffic counters of one device port, updated on the receive and send paths.
    """

    rx_frames: int = 0
    """Frames read from the device and handed to the bridge."""
    rx_bytes: int = 0
    """Bytes of the frames counted in C{rx_frames}."""
    tx_frames: int = 0
    """Frames (or tunnel packets) the device accepted for sending."""
    tx_bytes: int = 0
    """Bytes of the frames counted in C{tx_frames}."""
    rx_errors: int = 0
    """Reads that failed with an OS error other than C{EAGAIN} or C{EINTR}."""
    tx_errors: int = 0
    """Sends that failed with an OS error other than a full queue."""
    rx_dropped: int = 0
    """Packets read but not handed to the bridge (malformed, unknown peer, echo)."""
    tx_dropped: int = 0
    """Frames not sent because the device queue was full (C{EAGAIN}, C{ENOBUFS})."""
    decode_errors: dict[str, int] = field(default_factory=dict)
    """Malformed packets by the C{protocol} label of the L{DecodeError}."""

    def count_decode_error(self, protocol: str) -> None:
        """
        Count one malformed packet under C{protocol} and in C{rx_dropped}.
        """
        self.rx_dropped += 1
        self.decode_errors[protocol] = self.decode_errors.get(protocol, 0) + 1

    def as_dict(self) -> dict[str, int]:
        """
        Return the counters as a flat mapping, decode errors as
        C{decode_errors.<protocol>}.
        """
        flat = {
            "rx_frames": self.rx_frames,
            "rx_bytes": self.rx_bytes,
            "tx_frames": self.tx_frames,
            "tx_bytes": self.tx_bytes,
            "rx_errors": self.rx_errors,
            "tx_errors": self.tx_errors,
            "rx_dropped": self.rx_dropped,
            "tx_dropped": self.tx_dropped,
        }
        for protocol, count in self.decode_errors.items():
            flat[f"decode_errors.{protocol}"] = count
        return flat


class RepeatLimitedLog:
    """
    Log an error that may repeat for every frame on occurrences 1, 2, 4, 8 and
    so on, so a flood of bad packets costs a few log lines, not one per packet.

    The limiter counts occurrences instead of reading a clock, so it behaves
    the same under the reactor, under C{task.Clock} and in a benchmark loop.
    """

    def __init__(self, log: Logger) -> None:
        self._log = log
        self._occurrences: dict[str, int] = {}

    def error(self, key: str, format: str, /, **fields: object) -> None:
        """
        Count one occurrence of the error named C{key} and log C{format} with
        C{fields} if the count is a power of two.  The count is passed as the
        C{occurrences} field.
        """
        count = self._occurrences.get(key, 0) + 1
        self._occurrences[key] = count
        if count & (count - 1) == 0:
            self._log.error(format, occurrences=count, **fields)
