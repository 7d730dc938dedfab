# -*- test-case-name: tests.radio.test_service -*-
"""
L{HostapdRadio}: the Twisted service that follows a hostapd control socket
and reports station events to the AP daemon.
"""

from __future__ import annotations

import os
import tempfile

from twisted.application import service
from twisted.internet.protocol import ConnectedDatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from roaming.errors import DecodeError
from roaming.radio.hostapd import (
    MAX_MESSAGE_SIZE,
    ControlState,
    HostapdControl,
    StationConnected,
    format_mac,
)
from roaming.radio.interfaces import IRadio, IStationListener

__all__ = ["HostapdRadio"]

#: Name of the client socket inside the service's private directory.
_SOCKET_NAME = "ctrl"


class _ControlProtocol(ConnectedDatagramProtocol):
    def __init__(self, radio: HostapdRadio) -> None:
        self._radio = radio

    def datagramReceived(self, datagram: bytes) -> None:
        self._radio._datagram_received(datagram)

    def connectionRefused(self) -> None:
        self._radio._connection_refused = True

    def connectionFailed(self, reason: object) -> None:
        self._radio._connection_refused = True


@implementer(IRadio)
class HostapdRadio(service.Service):
    """
    Radio events from hostapd's control interface.

    The service binds its own UNIX datagram socket at C{local_path},
    connects it to hostapd's socket at C{control_path}, attaches, and calls
    C{listener} for every station that connects or disconnects. It pings
    hostapd every C{ping_interval} seconds. The socket is connected, as
    hostapd's own clients do it, because a restarted hostapd binds a new
    socket at the same path. Sending to the old one then fails with
    ECONNREFUSED, so the service opens a new socket and attaches again.

    @ivar counters: C{events}, C{decode_errors}, C{send_errors} and
        C{reattaches} since start.
    """

    log = Logger()

    def __init__(
        self,
        control_path: str,
        listener: IStationListener,
        *,
        interface: str,
        local_path: str | None = None,
        reactor: object = None,
        ping_interval: float = 5.0,
        reply_timeout: float = 1.0,
        retry_interval: float = 1.0,
    ) -> None:
        """
        @param control_path: hostapd's control socket, usually
            C{/var/run/hostapd/<interface>}.
        @param listener: an L{IStationListener}.
        @param interface: the wireless interface that carries station frames.
        @param local_path: the path to bind the client socket to. By default
            the service creates a private directory (C{tempfile.mkdtemp},
            mode 0700, random name) at start, binds C{ctrl} inside it and
            removes both at stop, so no other local user can predict or
            replace the socket.
        @param reactor: provider of C{IReactorUNIXDatagram} and
            C{IReactorTime}; the global reactor by default.
        """
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.control_path = control_path
        self.interface = interface
        #: The client socket's path; C{None} until start without C{local_path}.
        self.local_path: str | None = local_path
        self._private_directory: str | None = None
        self.listener = listener
        self.counters = {"events": 0, "decode_errors": 0, "send_errors": 0, "reattaches": 0}
        self._reactor = reactor
        self._control = HostapdControl(
            ping_interval=ping_interval,
            reply_timeout=reply_timeout,
            retry_interval=retry_interval,
        )
        self._port = None
        self._timer = None
        self._was_attached = False
        self._connection_refused = False

    @property
    def stations(self) -> set[bytes]:
        """
        MAC addresses of the stations reported as connected.
        """
        return set(self._control.stations)

    @property
    def state(self) -> ControlState:
        """
        The attachment state of the control connection.
        """
        return self._control.state

    def startService(self) -> None:
        super().startService()
        self.log.info(
            "Attaching to hostapd at {control_path} for {interface}",
            control_path=self.control_path,
            interface=self.interface,
        )
        if self.local_path is None:
            self._private_directory = tempfile.mkdtemp(prefix="roaming-hostapd-")
            self.local_path = os.path.join(self._private_directory, _SOCKET_NAME)
        self._control.start(self._reactor.seconds())
        self._flush()

    def stopService(self) -> None:
        super().stopService()
        self._control.detach()
        self._flush()
        self._cancel_timer()
        self._close_port()
        if self._private_directory is not None:
            os.rmdir(self._private_directory)
            self._private_directory = None
            self.local_path = None

    def _open_port(self) -> None:
        """
        Open a fresh client socket connected to hostapd, or leave L{_port}
        unset and L{_connection_refused} set if hostapd's socket is missing.
        """
        self._close_port()
        self._connection_refused = False
        port = self._reactor.connectUNIXDatagram(
            self.control_path,
            _ControlProtocol(self),
            maxPacketSize=MAX_MESSAGE_SIZE + 1,
            mode=0o600,
            bindAddress=self.local_path,
        )
        if not self._connection_refused:
            self._port = port

    def _close_port(self) -> None:
        if self._port is not None:
            port, self._port = self._port, None
            port.stopListening()
        # A socket file left behind, also by a crashed run, makes bind() fail.
        if self.local_path is not None and os.path.exists(self.local_path):
            os.unlink(self.local_path)

    def _datagram_received(self, datagram: bytes) -> None:
        now = self._reactor.seconds()
        try:
            events = self._control.receive(datagram, now)
        except DecodeError as error:
            self.counters["decode_errors"] += 1
            # One line per power of two keeps a flood of garbage from
            # flooding the log.
            count = self.counters["decode_errors"]
            if count & (count - 1) == 0:
                self.log.warn(
                    "Dropped malformed message from hostapd at {control_path}: "
                    "{error} ({count} so far)",
                    control_path=self.control_path,
                    error=error,
                    count=count,
                )
            events = []

        self._note_attachment()
        for event in events:
            self._deliver(event)
        self._flush()

    def _deliver(self, event: object) -> None:
        self.counters["events"] += 1
        mac = format_mac(event.mac)
        try:
            if isinstance(event, StationConnected):
                self.log.info(
                    "Station {mac} connected on {interface}", mac=mac, interface=self.interface
                )
                self.listener.station_connected(event.mac)
            else:
                self.log.info(
                    "Station {mac} disconnected from {interface}", mac=mac, interface=self.interface
                )
                self.listener.station_disconnected(event.mac)
        except Exception:
            self.log.failure("Station listener failed on an event for {mac}", mac=mac)

    def _note_attachment(self) -> None:
        attached = self._control.state is ControlState.ATTACHED
        if attached and not self._was_attached:
            self.log.info("Attached to hostapd at {control_path}", control_path=self.control_path)
        elif self._was_attached and not attached:
            self.counters["reattaches"] += 1
            self.log.warn(
                "Lost hostapd at {control_path}; attaching again", control_path=self.control_path
            )
        self._was_attached = attached

    def _on_timer(self) -> None:
        self._timer = None
        self._control.tick(self._reactor.seconds())
        self._note_attachment()
        self._flush()

    def _flush(self) -> None:
        """
        Send the queued commands and rearm the timer for the next deadline.
        """
        for command in self._control.data_to_send():
            if command == b"ATTACH":
                self._open_port()
            if command == b"DETACH" and self._port is None:
                break
            error = self._write(command)
            if error is not None:
                self._report_send_error(command, error)
                self._control.send_failed(self._reactor.seconds())
                self._control.data_to_send()
                break
        self._note_attachment()
        self._arm_timer()

    def _write(self, command: bytes) -> str | None:
        """
        Send one command and return why it failed, or L{None}.
        """
        if self._port is None:
            return "hostapd's control socket is missing or refuses connections"
        try:
            self._port.write(command)
        except OSError as error:
            return str(error)
        if self._connection_refused:
            return "connection refused (hostapd restarted or stopped)"
        return None

    def _report_send_error(self, command: bytes, error: str) -> None:
        self.counters["send_errors"] += 1
        count = self.counters["send_errors"]
        if count & (count - 1) == 0:
            self.log.warn(
                "Sending {command} to hostapd at {control_path} failed: {error} "
                "({count} so far); retrying",
                command=command.decode("ascii"),
                control_path=self.control_path,
                error=error,
                count=count,
            )

    def _arm_timer(self) -> None:
        self._cancel_timer()
        if not self.running:
            return
        deadline = self._control.next_deadline()
        if deadline is None:
            return
        delay = max(0.0, deadline - self._reactor.seconds())
        self._timer = self._reactor.callLater(delay, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
