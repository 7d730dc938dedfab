# -*- test-case-name: tests.radio.test_service -*-
"""
Interfaces between the AP daemon and its radio.
"""

from zope.interface import Attribute, Interface

__all__ = ["IRadio", "IStationListener"]


class IStationListener(Interface):
    """
    Receiver of station association events; the AP daemon provides it.
    """

    def station_connected(mac: bytes) -> None:  # noqa: N805 (zope interface)
        """
        A station with the 6-byte MAC address C{mac} associated, or
        re-associated, with this access point.
        """

    def station_disconnected(mac: bytes) -> None:  # noqa: N805 (zope interface)
        """
        The station with the 6-byte MAC address C{mac} left this access
        point.
        """


class IRadio(Interface):
    """
    The wireless side of an access point: station events, plus the name of
    the network interface that carries the stations' Ethernet frames.

    A radio is a L{twisted.application.service.IService}: add it to the AP
    daemon's service collection, and it calls its listener between
    C{startService} and C{stopService}.
    """

    interface = Attribute(
        "Name of the network interface (str) carrying station frames, on which "
        "the daemon opens a packet-socket port."
    )
    stations = Attribute("Set of 6-byte MAC addresses of the stations reported as connected.")
