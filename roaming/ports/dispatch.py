# -*- test-case-name: tests.ports.test_dispatch -*-
"""
Bind a bridge core to device ports: every received frame goes through
C{Bridge.process}, and the frame is sent unchanged to each C{(port, agg_id)}
the bridge returns.
"""

from typing import Protocol

from twisted.logger import Logger

from roaming.ports.counters import RepeatLimitedLog
from roaming.ports.tap import FrameSink

__all__ = ["BridgeCore", "BridgeDispatcher", "DevicePort"]

_log = Logger()


class BridgeCore(Protocol):
    """
    The part of the bridge contract (docs/architecture.md) the dispatcher uses.
    """

    def add_port(
        self, name: str, *, aggregation: bool = False, access_controlled: bool = False
    ) -> int: ...

    def add_member(self, port: int, agg_id: int) -> None: ...

    def remove_member(self, port: int, agg_id: int) -> None: ...

    def remove_port(self, port: int) -> None: ...

    def process(self, port: int, agg_id: int | None, frame: bytes, now: float): ...


class DevicePort(Protocol):
    """
    Interface of the ports of L{roaming.ports}, as the dispatcher uses it.
    """

    name: str

    def start_port(self, sink: FrameSink) -> None: ...

    def stop_port(self): ...

    def send_frame(self, frame: bytes, agg_id: int | None = None) -> None: ...


class BridgeDispatcher:
    """
    Move frames between device ports through one bridge core.

    The dispatcher reads the time once per frame from C{clock} and passes it
    to the bridge.  A frame the bridge sends to a port that is no longer
    attached is counted in C{unknown_egress} and dropped.  An exception from
    the bridge is counted in C{bridge_errors}, and one from a port's
    C{send_frame} in C{send_errors}; both are logged and the frame dropped,
    because letting them reach the reactor would unregister the ingress
    port's reader.
    """

    def __init__(self, bridge: BridgeCore, *, clock) -> None:
        """
        @param bridge: the bridge core.
        @param clock: an L{IReactorTime}, for C{seconds()}.
        """
        self.bridge = bridge
        self._clock = clock
        self._ports: dict[int, DevicePort] = {}
        self.unknown_egress = 0
        self.bridge_errors = 0
        self.send_errors = 0
        self._errors = RepeatLimitedLog(_log)

    def attach(self, port: DevicePort, **port_options) -> int:
        """
        Add C{port} to the bridge, register its aggregation members, and
        start it. If the port fails to start, it is removed from the bridge
        again and the exception propagates.

        @param port_options: passed to C{Bridge.add_port}, such as
            C{access_controlled=True}.
        @return: the bridge's number for the port.
        """
        aggregation = getattr(port, "aggregation", False)
        number = self.bridge.add_port(port.name, aggregation=aggregation, **port_options)
        if aggregation:
            for agg_id in port.member_ids():
                self.bridge.add_member(number, agg_id)
        self._ports[number] = port
        try:
            port.start_port(self._sink_for(number))
        except BaseException:
            del self._ports[number]
            self.bridge.remove_port(number)
            raise
        _log.info("Attached port {name} as bridge port {number}", name=port.name, number=number)
        return number

    def detach(self, number: int):
        """
        Stop the port with bridge number C{number} and forget it.

        @return: what the port's C{stop_port} returns.
        """
        port = self._ports.pop(number)
        _log.info("Detached port {name} (bridge port {number})", name=port.name, number=number)
        return port.stop_port()

    def ports(self) -> dict[int, DevicePort]:
        """
        Return the attached ports by bridge port number.
        """
        return dict(self._ports)

    def _sink_for(self, number: int) -> FrameSink:
        """
        Return the frame sink of bridge port C{number}. A subclass that
        decides more per frame builds its own sink from L{_count_bridge_error}
        and L{_send_to_egress}.
        """
        process = self.bridge.process
        seconds = self._clock.seconds
        send_to_egress = self._send_to_egress

        def frame_received(agg_id: int | None, frame: bytes) -> None:
            try:
                egress = process(number, agg_id, frame, seconds())
            except Exception as e:
                self._count_bridge_error(number, agg_id, e)
                return
            send_to_egress(frame, egress)

        return frame_received

    def _count_bridge_error(self, number: int, agg_id: int | None, error: Exception) -> None:
        self.bridge_errors += 1
        self._errors.error(
            "bridge",
            "Bridge failed on a frame from port {port} member {agg_id}: {error}",
            port=number,
            agg_id=agg_id,
            error=error,
        )

    def _send_to_egress(self, frame: bytes, egress) -> None:
        """
        Send C{frame} to each C{(port, agg_id)} of C{egress}.
        """
        ports = self._ports
        for egress_port, egress_agg_id in egress:
            port = ports.get(egress_port)
            if port is None:
                self.unknown_egress += 1
                self._errors.error(
                    "egress",
                    "Bridge sent a frame to unattached port {port}; dropped",
                    port=egress_port,
                )
                continue
            try:
                port.send_frame(frame, egress_agg_id)
            except Exception as e:
                # Ports count their own send errors; this is a bug in one.
                self.send_errors += 1
                self._errors.error(
                    "send",
                    "Port {name} failed to send a frame to member {agg_id}: {error}",
                    name=port.name,
                    agg_id=egress_agg_id,
                    error=e,
                )
