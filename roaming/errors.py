# -*- test-case-name: tests.codec -*-
"""
Exceptions shared by every layer of roaming.
"""

__all__ = ["DecodeError", "RoamingError"]


class RoamingError(Exception):
    """
    Base class of every exception that roaming raises on purpose.
    """


class DecodeError(RoamingError, ValueError):
    """
    Malformed wire input: a runt, truncated, oversized or inconsistent frame,
    packet or header.

    Every codec raises this and nothing else for bad input, so an adapter can
    count and drop the frame with one C{except DecodeError}.

    @ivar protocol: short name of the layer that rejected the input, such as
        C{"ipv4"} or C{"gre"}; adapters use it as a counter label.
    """

    def __init__(self, protocol: str, message: str) -> None:
        super().__init__(f"{protocol}: {message}")
        self.protocol = protocol
