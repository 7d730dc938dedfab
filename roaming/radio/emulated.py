# -*- test-case-name: tests.radio.test_emulated -*-
"""
An emulated radio: a server speaking hostapd's control-interface protocol.

roaming-lab has no radios, so it runs one L{EmulatedRadio} per access point
and reports a client's association by calling L{EmulatedRadio.connect_station}
after moving the client's link into that access point's cell. The AP daemon
follows the socket with the same L{roaming.radio.service.HostapdRadio} it
uses against a real hostapd, so the lab exercises the production code path.

The emulator implements the subset of the protocol that the client uses:
C{PING}, C{ATTACH}, C{DETACH}, C{STA-FIRST}, C{STA-NEXT <mac>} and
C{STA <mac>}; anything else gets C{UNKNOWN COMMAND}, as hostapd answers.
"""

from __future__ import annotations

import os
from collections.abc import Hashable

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from roaming.radio.hostapd import MAX_MESSAGE_SIZE, format_mac, parse_mac

__all__ = ["EmulatedHostapd", "EmulatedRadio"]


class EmulatedHostapd:
    """
    Sans-IO state of an emulated hostapd control interface: the associated
    stations and the attached clients.

    Replies and events are returned as C{(client, datagram)} pairs; the
    caller sends them.
    """

    def __init__(self, *, max_clients: int = 16, max_stations: int = 4096) -> None:
        #: Associated stations, in association order (dicts keep it).
        self.stations: dict[bytes, None] = {}
        #: Attached clients, in attach order.
        self.clients: dict[Hashable, None] = {}
        self._max_clients = max_clients
        self._max_stations = max_stations

    def handle_request(self, client: Hashable, data: bytes) -> bytes:
        """
        Process one command datagram from C{client} and return the reply.
        """
        try:
            text = data.decode("ascii").strip()
        except UnicodeDecodeError:
            return b"UNKNOWN COMMAND\n"
        verb, _, argument = text.partition(" ")

        if verb == "PING":
            return b"PONG\n"
        if verb == "ATTACH":
            return self._attach(client)
        if verb == "DETACH":
            if client not in self.clients:
                return b"FAIL\n"
            del self.clients[client]
            return b"OK\n"
        if verb == "STA-FIRST":
            return self._describe(next(iter(self.stations), None))
        if verb == "STA-NEXT":
            return self._describe(self._station_after(argument))
        if verb == "STA":
            mac = self._parse(argument)
            return self._describe(mac if mac in self.stations else None)
        return b"UNKNOWN COMMAND\n"

    def connect_station(self, mac: bytes) -> list[tuple[Hashable, bytes]]:
        """
        Associate C{mac} and return the event datagrams for every client.

        @raise ValueError: if the station table is full.
        """
        if mac not in self.stations and len(self.stations) >= self._max_stations:
            raise ValueError(
                f"station table is full ({self._max_stations} stations); "
                f"disconnect a station before connecting {format_mac(mac)}"
            )
        self.stations[mac] = None
        return self._event(f"AP-STA-CONNECTED {format_mac(mac)}")

    def disconnect_station(self, mac: bytes) -> list[tuple[Hashable, bytes]]:
        """
        Disassociate C{mac} and return the event datagrams for every client;
        an unknown station produces no event.
        """
        if mac not in self.stations:
            return []
        del self.stations[mac]
        return self._event(f"AP-STA-DISCONNECTED {format_mac(mac)}")

    def drop_client(self, client: Hashable) -> None:
        """
        Forget a client whose socket no longer accepts datagrams, as hostapd
        does after repeated send errors.
        """
        self.clients.pop(client, None)

    def _attach(self, client: Hashable) -> bytes:
        if client not in self.clients and len(self.clients) >= self._max_clients:
            return b"FAIL\n"
        self.clients[client] = None
        return b"OK\n"

    def _event(self, text: str) -> list[tuple[Hashable, bytes]]:
        # Priority 3 is MSG_INFO, the level hostapd uses for these events.
        datagram = f"<3>{text}".encode("ascii")
        return [(client, datagram) for client in self.clients]

    def _station_after(self, argument: str) -> bytes | None:
        mac = self._parse(argument)
        stations = list(self.stations)
        if mac not in self.stations:
            return None
        index = stations.index(mac) + 1
        return stations[index] if index < len(stations) else None

    @staticmethod
    def _parse(argument: str) -> bytes | None:
        try:
            return parse_mac(argument)
        except ValueError:
            return None

    @staticmethod
    def _describe(mac: bytes | None) -> bytes:
        if mac is None:
            return b""
        return f"{format_mac(mac)}\nflags=[AUTH][ASSOC][AUTHORIZED]\n".encode("ascii")


class EmulatedRadio(DatagramProtocol):
    """
    Serve an L{EmulatedHostapd} on a UNIX datagram socket.

    Use L{listen} to bind it, then L{connect_station} and
    L{disconnect_station} to send events to the attached AP daemon.
    """

    log = Logger()

    def __init__(self, path: str, *, reactor: object = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.path = path
        self.state = EmulatedHostapd()
        self.send_errors = 0
        self._reactor = reactor
        self._port = None

    def listen(self) -> None:
        """
        Bind the control socket at L{path}, replacing a stale socket file.
        """
        if os.path.exists(self.path):
            os.unlink(self.path)
        self._port = self._reactor.listenUNIXDatagram(
            self.path, self, maxPacketSize=MAX_MESSAGE_SIZE
        )

    def close(self) -> None:
        """
        Stop listening and remove the socket file.
        """
        if self._port is not None:
            port, self._port = self._port, None
            port.stopListening()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def datagramReceived(self, datagram: bytes, address: object) -> None:
        if not address:
            # An unbound client socket has no address to reply to.
            return
        reply = self.state.handle_request(address, datagram)
        self._send(address, reply)

    def connect_station(self, mac: bytes) -> int:
        """
        Report C{mac} as associated; return the number of clients sent the event.
        """
        return self._send_all(self.state.connect_station(mac))

    def disconnect_station(self, mac: bytes) -> int:
        """
        Report C{mac} as gone; return the number of clients sent the event.
        """
        return self._send_all(self.state.disconnect_station(mac))

    def _send_all(self, datagrams: list[tuple[object, bytes]]) -> int:
        return sum(self._send(client, datagram) for client, datagram in datagrams)

    def _send(self, client: object, datagram: bytes) -> bool:
        if self._port is None:
            return False
        try:
            self._port.write(datagram, client)
        except OSError as error:
            self.send_errors += 1
            self.state.drop_client(client)
            self.log.warn(
                "Dropped client {client} of the emulated radio at {path}: {error}",
                client=client,
                path=self.path,
                error=error,
            )
            return False
        return True
