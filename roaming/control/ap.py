# -*- test-case-name: tests.control.test_core_scenarios -*-
"""
The access point (AP) role, sans-IO.

An L{AccessPoint} takes local events (a station associated or
disassociated on the radio, a client's IP address seen by the bridge, an
IEEE 802.11F ADD-notify heard on the LAN, the control connection to its SC
coming up or going down) and messages from its SC, each with C{now}, and
returns the L{roaming.control.actions} to carry out.

Rules it implements:

  - On association the AP sends an 802.11F ADD-notify and an L{IappAdd} to
    its SC. If its client cache already has the client's IP address, it
    decides at once whether the client is at home: at home it sends the
    layer 2 update frame and L{ApDeleteTraveler}; away from home it starts
    tunnelling the client's traffic to the SC before any frame arrives
    (proactive tunnelling) and sends L{ApAddTraveler}.
  - When the bridge sees the client's first IP packet (L{client_ip_seen}),
    the AP sends L{IappAdd} again with the address. If the address differs
    from the cached one, the proactive decision is undone and taken again
    from the real address.
  - The layer 2 update frame is sent for a client at home and on
    L{AddTraveler}, never for a visitor, because from a foreign AP it could
    make switches with proxy ARP start replying for the client.
  - An 802.11F ADD-notify from another AP for a local station means the
    station has moved, so the AP removes it.
  - A station that associates without a VLAN ID keeps the VLAN ID in its
    cached details, which may have come from RADIUS at an earlier
    association: a fast re-association with cached keys skips 802.1X.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network

import attrs

from roaming.control.actions import (
    Action,
    AddL3Entry,
    AddStaticEntry,
    ClearSourceEntry,
    L3Match,
    RemoveL3Entry,
    RemoveStaticEntry,
    RemoveStation,
    Send,
    SendIappAddNotify,
    SendLayer2Update,
    SetFloodToPeer,
    SetSourceEntry,
    SetStationVlan,
    TunnelDown,
    TunnelUp,
)
from roaming.control.clientdb import ClientDatabase, ClientRecord, DatabaseFullError
from roaming.control.messages import (
    AddTraveler,
    ApAddTraveler,
    ApDeleteTraveler,
    ApRegister,
    DeleteTraveler,
    DeleteVisitor,
    IappAdd,
    IappMove,
    Keepalive,
    Message,
    UnexpectedMessageError,
)

__all__ = ["MAX_STATIONS", "AccessPoint", "Station"]

#: Default maximum number of associated stations, and of travelers.
MAX_STATIONS = 2048


@attrs.define
class Station:
    """
    A station associated with this AP's radio.
    """

    mac: bytes
    vap_id: int
    vlan_id: int
    #: The client's IP address: cached until C{ip_confirmed}, then seen.
    ip: IPv4Address | None = None
    prefix: int | None = None
    ip_confirmed: bool = False
    pmk_cache: bytes = b""


class AccessPoint:
    """
    One AP's control plane state and rules.

    @param address: the AP's address.
    @param controller: the address of the SC controlling it.
    @param subnets: the AP's own subnets (one per VLAN interface).
    @param vlans: the VLAN IDs of its bridges.
    @param database: the client cache (in memory, without SQLite, by
        default).
    """

    def __init__(
        self,
        address: IPv4Address,
        controller: IPv4Address,
        subnets: Iterable[IPv4Network],
        *,
        vlans: Iterable[int] = (),
        database: ClientDatabase | None = None,
        max_stations: int = MAX_STATIONS,
    ) -> None:
        self.address = address
        self.controller = controller
        self.subnets = tuple(subnets)
        self.vlans = tuple(vlans)
        self.db = database if database is not None else ClientDatabase(None)
        self.max_stations = max_stations
        self.connected = False
        self.stations: dict[bytes, Station] = {}
        #: Travelers whose traffic this AP tunnels to its SC, by MAC, with
        #: their VLAN ID.
        self.travelers: dict[bytes, int] = {}
        #: Visiting stations (associated here with an IP address outside
        #: this AP's subnets), by MAC.
        self.visitors: dict[bytes, Station] = {}

    def is_home(self, ip: IPv4Address) -> bool:
        """
        Return whether C{ip} lies inside one of this AP's subnets.
        """
        return any(ip in subnet for subnet in self.subnets)

    # Control connection.

    def controller_connected(self, now: float) -> list[Action]:
        """
        Register with the SC, bring the tunnel to it up, point the L3
        knowledge at it, and report every associated station again.
        """
        self.connected = True
        sc = self.controller
        actions: list[Action] = [
            Send(sc, ApRegister(self.address, self.subnets, self.vlans)),
            TunnelUp(sc),
            # LAN floods go to the SC only while this AP tunnels a traveler.
            SetFloodToPeer(sc, bool(self.travelers)),
        ]
        actions.extend(AddL3Entry(subnet, sc, L3Match.NEGATIVE) for subnet in self.subnets)
        actions.extend(Send(sc, self._iapp_add(station)) for station in self.stations.values())
        return actions

    def controller_lost(self, now: float) -> list[Action]:
        """
        Withdraw the L3 knowledge entries and the tunnel that pointed at the
        lost SC.
        """
        self.connected = False
        sc = self.controller
        actions: list[Action] = [RemoveL3Entry(subnet, sc) for subnet in self.subnets]
        actions.append(TunnelDown(sc))
        return actions

    # Radio and bridge events.

    def station_associated(
        self,
        mac: bytes,
        now: float,
        *,
        vap_id: int = 0,
        vlan_id: int = 0,
        pmk_cache: bytes = b"",
    ) -> list[Action]:
        """
        Process a new association of C{mac} on the radio.

        @raise DatabaseFullError: if C{max_stations} stations are associated.
        """
        if mac not in self.stations and len(self.stations) >= self.max_stations:
            raise DatabaseFullError(
                f"AP {self.address} has {self.max_stations} associated stations; raise max_stations"
            )
        cached = self.db.get(mac)
        # A station that re-associates starts over: drop its old state.
        actions = self._forget_visitor(mac)
        if cached is not None and vlan_id == 0 and cached.vlan_id != 0:
            # No VLAN from this association (no 802.1X on a fast
            # re-association), so the VLAN assigned before stays in use.
            vlan_id = cached.vlan_id
            actions.append(SetStationVlan(mac, vlan_id))
        station = Station(mac, vap_id, vlan_id, pmk_cache=pmk_cache)
        if cached is not None:
            station.ip, station.prefix = cached.ip, cached.prefix
        self.stations[mac] = station
        self._cache(station, now)

        actions.append(SendIappAddNotify(mac))
        actions.append(Send(self.controller, self._iapp_add(station)))
        if station.ip is not None:
            actions.extend(self._place(station, proactive=True))
        return actions

    def station_disassociated(self, mac: bytes, now: float) -> list[Action]:
        """
        Process the end of an association (timeout, deauthentication,
        shutdown). The client's cached details stay.
        """
        if self.stations.pop(mac, None) is None:
            return []
        return self._forget_visitor(mac)

    def client_ip_seen(
        self, mac: bytes, ip: IPv4Address, now: float, *, prefix: int | None = None
    ) -> list[Action]:
        """
        Process the first IP address seen from an associated station (its
        first IP packet, its DHCP address, or the bridge's roaming client
        event).
        """
        station = self.stations.get(mac)
        if station is None:
            return []
        if station.ip == ip:
            # The cached address was right, so the proactive decision is kept.
            if station.ip_confirmed:
                return []
            station.ip_confirmed = True
            station.prefix = prefix if prefix is not None else station.prefix
            self._cache(station, now)
            return [Send(self.controller, self._iapp_add(station))]

        actions: list[Action] = []
        if mac in self.visitors and self.is_home(ip):
            # The cached address was foreign but the real one is at home, so
            # the proactive tunnelling stops.
            del self.visitors[mac]
            actions.append(ClearSourceEntry(mac, station.vlan_id))
        station.ip, station.prefix, station.ip_confirmed = ip, prefix, True
        self._cache(station, now)
        actions.append(Send(self.controller, self._iapp_add(station)))
        actions.extend(self._place(station, proactive=False))
        return actions

    def iapp_add_notify_received(self, mac: bytes, sender: IPv4Address, now: float) -> list[Action]:
        """
        Process an 802.11F ADD-notify from C{sender}: a station that
        associated there is no longer here.
        """
        if sender == self.address or mac not in self.stations:
            return []
        del self.stations[mac]
        return [RemoveStation(mac), *self._forget_visitor(mac)]

    # Messages from the SC.

    def receive(self, peer: IPv4Address, message: Message, now: float) -> list[Action]:
        """
        Process a message from the SC.

        @raise UnexpectedMessageError: if C{peer} is not this AP's SC or the
            message is not one an SC sends to an AP.
        """
        if peer != self.controller:
            raise UnexpectedMessageError(
                f"{type(message).__name__} from {peer}, but AP {self.address} is"
                f" controlled by {self.controller}"
            )
        if isinstance(message, IappAdd):
            return self._on_iapp_add(message, now)
        if isinstance(message, IappMove):
            return self._on_iapp_move(message)
        if isinstance(message, AddTraveler):
            return self._on_add_traveler(message)
        if isinstance(message, DeleteTraveler):
            return self._on_delete_traveler(message)
        if isinstance(message, DeleteVisitor):
            return self._on_delete_visitor(message)
        if isinstance(message, Keepalive):
            return []
        raise UnexpectedMessageError(f"AP {self.address} does not accept {type(message).__name__}")

    def _on_iapp_add(self, message: IappAdd, now: float) -> list[Action]:
        previous = self.db.get(message.mac) or ClientRecord(message.mac)
        ip, prefix = message.ip, message.prefix
        if ip is None:
            ip, prefix = previous.ip, previous.prefix
        self.db.put(
            attrs.evolve(
                previous,
                ip=ip,
                prefix=prefix,
                vap_id=message.vap_id,
                vlan_id=message.vlan_id,
                current_ap=message.ap,
                pmk_cache=message.pmk_cache or previous.pmk_cache,
                updated=now,
            )
        )
        return []

    def _on_iapp_move(self, message: IappMove) -> list[Action]:
        if self.stations.pop(message.mac, None) is None:
            return []
        return [RemoveStation(message.mac), *self._forget_visitor(message.mac)]

    def _on_add_traveler(self, message: AddTraveler) -> list[Action]:
        mac, sc = message.mac, self.controller
        if mac not in self.travelers and len(self.travelers) >= self.max_stations:
            raise DatabaseFullError(
                f"AP {self.address} tunnels {self.max_stations} travelers already;"
                " raise max_stations"
            )
        actions: list[Action] = []
        if not self.travelers:
            actions.append(SetFloodToPeer(sc, True))
        self.travelers[mac] = message.vlan_id
        actions.append(AddStaticEntry(mac, sc, message.vlan_id))
        actions.append(SendLayer2Update(mac, message.vlan_id))
        return actions

    def _on_delete_traveler(self, message: DeleteTraveler) -> list[Action]:
        return self._stop_traveler(message.mac)

    def _on_delete_visitor(self, message: DeleteVisitor) -> list[Action]:
        actions: list[Action] = []
        if self.stations.pop(message.mac, None) is not None:
            actions.append(RemoveStation(message.mac))
        actions.extend(self._forget_visitor(message.mac))
        return actions

    # Steps.

    def _place(self, station: Station, *, proactive: bool) -> list[Action]:
        """
        Return the actions for a station whose IP address is known: at home
        or visiting.
        """
        assert station.ip is not None
        mac, sc = station.mac, self.controller
        if self.is_home(station.ip):
            actions = self._stop_traveler(mac)
            actions.append(SendLayer2Update(mac, station.vlan_id))
            actions.append(Send(sc, ApDeleteTraveler(mac, station.ip)))
            return actions

        actions = []
        self.visitors[mac] = station
        if proactive:
            # No frame from the client yet, so the bridge's L3 knowledge has
            # not set its source forwarding; set it from the cached address.
            actions.append(SetSourceEntry(mac, sc, station.vlan_id))
        notice = ApAddTraveler(
            mac,
            station.ip,
            prefix=station.prefix,
            vap_id=station.vap_id,
            vlan_id=station.vlan_id,
        )
        actions.append(Send(sc, notice))
        return actions

    def _stop_traveler(self, mac: bytes) -> list[Action]:
        if mac not in self.travelers:
            return []
        vlan_id = self.travelers.pop(mac)
        actions: list[Action] = [RemoveStaticEntry(mac, vlan_id)]
        if not self.travelers:
            actions.append(SetFloodToPeer(self.controller, False))
        return actions

    def _forget_visitor(self, mac: bytes) -> list[Action]:
        visitor = self.visitors.pop(mac, None)
        if visitor is None:
            return []
        return [ClearSourceEntry(mac, visitor.vlan_id)]

    def _iapp_add(self, station: Station) -> IappAdd:
        return IappAdd(
            station.mac,
            station.ip,
            station.prefix,
            station.vap_id,
            station.vlan_id,
            station.pmk_cache,
            ap=self.address,
        )

    def _cache(self, station: Station, now: float) -> None:
        previous = self.db.get(station.mac) or ClientRecord(station.mac)
        self.db.put(
            attrs.evolve(
                previous,
                ip=station.ip,
                prefix=station.prefix,
                vap_id=station.vap_id,
                vlan_id=station.vlan_id,
                current_ap=self.address,
                pmk_cache=station.pmk_cache or previous.pmk_cache,
                updated=now,
            )
        )
