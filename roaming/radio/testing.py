# -*- test-case-name: tests.radio.test_service -*-
"""
An in-memory radio for unit tests of code that consumes station events.
"""

from twisted.application import service
from zope.interface import implementer

from roaming.radio.interfaces import IRadio, IStationListener

__all__ = ["MemoryRadio", "RecordingListener"]


@implementer(IRadio)
class MemoryRadio(service.Service):
    """
    A radio whose station events are raised by calling L{connect} and
    L{disconnect}; events raised while the service is stopped are ignored,
    as a real radio delivers none then.
    """

    def __init__(self, listener: IStationListener, *, interface: str = "wlan0") -> None:
        self.listener = listener
        self.interface = interface
        self.stations: set[bytes] = set()

    def connect(self, mac: bytes) -> None:
        """
        Report C{mac} as connected.
        """
        if self.running:
            self.stations.add(mac)
            self.listener.station_connected(mac)

    def disconnect(self, mac: bytes) -> None:
        """
        Report C{mac} as disconnected.
        """
        if self.running:
            self.stations.discard(mac)
            self.listener.station_disconnected(mac)


@implementer(IStationListener)
class RecordingListener:
    """
    A station listener that records every call as C{("connected", mac)} or
    C{("disconnected", mac)} in L{events}.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []

    def station_connected(self, mac: bytes) -> None:
        self.events.append(("connected", mac))

    def station_disconnected(self, mac: bytes) -> None:
        self.events.append(("disconnected", mac))
