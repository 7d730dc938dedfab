# -*- test-case-name: tests.control.test_core_scenarios -*-
"""
The service controller (SC) role, sans-IO.

An L{ServiceController} takes messages from peers (APs it controls, other
SCs, the primary SC) and local events (a peer connected or lost, a
reconfiguration, a deadline), each with C{now}, and returns the
L{roaming.control.actions} to carry out. It keeps the client database
(L{roaming.control.clientdb}) and runs discovery
(L{roaming.control.discovery}).

A message addressed to the SC itself never leaves it: when the home SC of a
roaming client is the foreign SC too (one SC serving several subnets), the
SC processes the notice locally, so there is never a tunnel to itself.

The processing on receipt of each message is described on the message
classes in L{roaming.control.messages}; the methods named C{_on_<message>}
implement it here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Network

import attrs

from roaming.control.actions import (
    Action,
    AddStaticEntry,
    ClearSourceEntry,
    RemoveStaticEntry,
    ReportProblem,
    Send,
    SetSourceEntry,
    TunnelDown,
    TunnelUp,
)
from roaming.control.clientdb import (
    ClientDatabase,
    ClientRecord,
    DatabaseFullError,
    SubnetTable,
    Traveler,
    Visitor,
)
from roaming.control.discovery import DEFAULT_ROUND_TIMEOUT, DiscoveryClient, PrimaryRegistry
from roaming.control.messages import (
    MAX_SUBNETS,
    AddTraveler,
    ApAddTraveler,
    ApDeleteTraveler,
    ApRegister,
    DeleteTraveler,
    DeleteVisitor,
    DiscoveryRound,
    IappAdd,
    IappMove,
    Keepalive,
    Message,
    MscAddTraveler,
    MscDeleteTraveler,
    MscDeleteVisitor,
    NoHomeAccessPointError,
    NoHomeControllerError,
    ScAnnounce,
    ScRegister,
    ScWithdraw,
    UnexpectedMessageError,
)

__all__ = ["MAX_ACCESS_POINTS", "ServiceController"]

#: Default maximum number of APs one SC controls.
MAX_ACCESS_POINTS = 4096

# A local delivery can cause further local deliveries, such as a notice to
# itself that ends a visit at itself. No rule chains more than a few, so
# reaching this limit means a bug.
_MAX_LOCAL_DELIVERIES = 64


class ServiceController:
    """
    One SC's control plane state and rules.

    @param address: this SC's address.
    @param database: its client database (a file, so a restart keeps the
        clients).
    @param primary: the primary SC's address; C{address} on the primary.
    @param subnets: subnets this SC serves besides those its APs register.
    @param lan_subnets: subnets this SC reaches directly through its LAN
        port. When it is the home SC of a client from such a subnet and
        finds no home AP, it puts the client's traffic on the LAN itself.
    @param share_client_cache: whether to pass each client's details
        (L{IappAdd}) on to the other APs and SCs, which lets a foreign AP
        tunnel a client before its first IP packet.
    """

    def __init__(
        self,
        address: IPv4Address,
        database: ClientDatabase,
        *,
        primary: IPv4Address,
        subnets: Iterable[IPv4Network] = (),
        lan_subnets: Iterable[IPv4Network] = (),
        share_client_cache: bool = True,
        round_timeout: float = DEFAULT_ROUND_TIMEOUT,
        max_access_points: int = MAX_ACCESS_POINTS,
    ) -> None:
        self.address = address
        self.db = database
        self.primary = primary
        self.lan_subnets = tuple(lan_subnets)
        self.share_client_cache = share_client_cache
        self.max_access_points = max_access_points
        self._configured_subnets = tuple(subnets)

        #: Registered APs and their subnets.
        self.aps = SubnetTable()
        self.ap_vlans: dict[IPv4Address, tuple[int, ...]] = {}

        self.discovery = DiscoveryClient(
            address, primary, self._configured_subnets, round_timeout=round_timeout
        )
        self.registry: PrimaryRegistry | None = None
        if primary == address:
            self.registry = PrimaryRegistry(address, round_timeout=round_timeout)

        self._handlers: dict[type, Callable[[IPv4Address, Message, float], list[Action]]] = {
            ScRegister: self._on_sc_register,
            ScAnnounce: self._on_discovery,
            ScWithdraw: self._on_discovery,
            DiscoveryRound: self._on_discovery,
            ApRegister: self._on_ap_register,
            Keepalive: self._on_keepalive,
            IappAdd: self._on_iapp_add,
            ApAddTraveler: self._on_ap_add_traveler,
            ApDeleteTraveler: self._on_ap_delete_traveler,
            MscAddTraveler: self._on_msc_add_traveler,
            MscDeleteTraveler: self._on_msc_delete_traveler,
            MscDeleteVisitor: self._on_msc_delete_visitor,
        }

    @property
    def is_primary(self) -> bool:
        """
        Whether this SC is the primary.
        """
        return self.registry is not None

    # Inputs from the daemon.

    def start(self, now: float) -> list[Action]:
        """
        Restore the bridge entries of the travelers and visitors in the
        database (after a restart), and start discovery. On the primary this
        registers with itself; other SCs register when L{peer_connected}
        reports the primary.
        """
        actions = self._restore_entries()
        if self.is_primary:
            actions.extend(self.discovery.primary_connected(now))
        return self._run(actions, now)

    def _restore_entries(self) -> list[Action]:
        actions: list[Action] = []
        for visitor in self.db.visitors():
            actions.append(AddStaticEntry(visitor.mac, visitor.ap, visitor.vlan_id))
            if visitor.home_sc != self.address:
                actions.append(SetSourceEntry(visitor.mac, visitor.home_sc, visitor.vlan_id))
        for traveler in self.db.travelers():
            if traveler.foreign_sc != self.address:
                actions.append(AddStaticEntry(traveler.mac, traveler.foreign_sc, traveler.vlan_id))
            actions.append(SetSourceEntry(traveler.mac, traveler.home_ap, traveler.vlan_id))
        return actions

    def peer_connected(self, peer: IPv4Address, now: float) -> list[Action]:
        """
        Note a new control connection. Reaching the primary starts this SC's
        registration; any other peer identifies itself by its first message.
        """
        if peer == self.primary and not self.is_primary:
            return self._run(self.discovery.primary_connected(now), now)
        return []

    def peer_lost(self, peer: IPv4Address, now: float) -> list[Action]:
        """
        Clean up after a lost control connection: an AP's tunnel goes down,
        and on the primary a lost SC is withdrawn from every other SC.
        """
        actions: list[Action] = []
        if self.registry is not None and peer in self.registry.registered():
            actions.extend(self.registry.lost(peer, now))
        if peer == self.primary and not self.is_primary:
            actions.extend(self.discovery.primary_lost(now))
        if peer in self.ap_vlans:
            actions.extend(self._remove_ap(peer, now))
        return self._run(actions, now)

    def reconfigure(self, now: float) -> list[Action]:
        """
        Start a new discovery round (primary only).
        """
        if self.registry is None:
            raise UnexpectedMessageError(
                f"SC {self.address} is not the primary ({self.primary}); only the"
                " primary starts a discovery round"
            )
        return self._run(self.registry.start_round(now), now)

    def next_deadline(self) -> float | None:
        """
        Return when L{expire} must run next, or C{None}.
        """
        deadlines = [self.discovery.next_deadline()]
        if self.registry is not None:
            deadlines.append(self.registry.next_deadline())
        pending = [deadline for deadline in deadlines if deadline is not None]
        return min(pending) if pending else None

    def expire(self, now: float) -> list[Action]:
        """
        Run the discovery timers whose deadline has passed.
        """
        actions: list[Action] = []
        if self.registry is not None:
            actions.extend(self.registry.expire(now))
        actions.extend(self.discovery.expire(now))
        return self._run(actions, now)

    def receive(self, peer: IPv4Address, message: Message, now: float) -> list[Action]:
        """
        Process a message from C{peer} and return the actions it causes.

        @raise UnexpectedMessageError: if C{peer} may not send C{message}.
        @raise NoHomeAccessPointError: for an L{MscAddTraveler} whose client
            has no home AP here.
        @raise NoHomeControllerError: for an L{ApAddTraveler} whose client's
            subnet no known SC serves.
        """
        return self._run(self._dispatch(peer, message, now), now)

    # Local delivery.

    def _dispatch(self, peer: IPv4Address, message: Message, now: float) -> list[Action]:
        handler = self._handlers.get(type(message))
        if handler is None:
            raise UnexpectedMessageError(
                f"SC {self.address} does not accept {type(message).__name__} (from {peer})"
            )
        return handler(peer, message, now)

    def _run(self, actions: list[Action], now: float) -> list[Action]:
        """
        Replace every message addressed to this SC with the actions that
        processing it locally causes.
        """
        output: list[Action] = []
        pending = list(reversed(actions))
        deliveries = 0
        while pending:
            action = pending.pop()
            if isinstance(action, Send) and action.peer == self.address:
                deliveries += 1
                if deliveries > _MAX_LOCAL_DELIVERIES:
                    raise RuntimeError("local message delivery did not settle")
                pending.extend(reversed(self._dispatch(self.address, action.message, now)))
            else:
                output.append(action)
        return output

    # Peer checks.

    def _require_ap(self, peer: IPv4Address, message: Message) -> None:
        if peer not in self.ap_vlans:
            raise UnexpectedMessageError(
                f"{type(message).__name__} from {peer}, which is not a registered AP of"
                f" SC {self.address}"
            )

    def _require_sc(self, peer: IPv4Address, message: Message) -> None:
        if peer != self.address and peer not in self.discovery.peers():
            raise UnexpectedMessageError(
                f"{type(message).__name__} from {peer}, which is not a known SC;"
                " it must register with the primary SC first"
            )

    # Discovery.

    def _on_sc_register(self, peer: IPv4Address, message: ScRegister, now: float) -> list[Action]:
        if self.registry is None:
            raise UnexpectedMessageError(
                f"ScRegister from {peer}, but SC {self.address} is not the primary"
            )
        return self.registry.register(peer, message, now)

    def _on_discovery(self, peer: IPv4Address, message: Message, now: float) -> list[Action]:
        return self.discovery.receive(peer, message, now)

    def _on_keepalive(self, peer: IPv4Address, message: Keepalive, now: float) -> list[Action]:
        return []

    def _on_ap_register(self, peer: IPv4Address, message: ApRegister, now: float) -> list[Action]:
        if message.ap != peer:
            raise UnexpectedMessageError(
                f"AP {peer} tried to register address {message.ap}; an AP may register"
                " only its own address"
            )
        new = peer not in self.ap_vlans
        if new and len(self.ap_vlans) >= self.max_access_points:
            raise DatabaseFullError(
                f"SC {self.address} controls {self.max_access_points} APs; AP {peer}"
                " was not registered"
            )
        self.aps.set(peer, message.subnets)
        self.ap_vlans[peer] = message.vlans
        actions: list[Action] = []
        if new:
            actions.append(TunnelUp(peer))
            # An AP that lost its connection, or an SC that restarted, may
            # have lost the AP's traveler entries: send them again.
            for traveler in self.db.travelers_with_home_ap(peer):
                record = self.db.get(traveler.mac)
                vap_id = record.vap_id if record is not None else 0
                actions.append(Send(peer, AddTraveler(traveler.mac, vap_id, traveler.vlan_id)))
        actions.extend(self._update_own_subnets(now))
        return actions

    def _remove_ap(self, ap: IPv4Address, now: float) -> list[Action]:
        self.aps.remove(ap)
        del self.ap_vlans[ap]
        return [TunnelDown(ap), *self._update_own_subnets(now)]

    def _update_own_subnets(self, now: float) -> list[Action]:
        subnets = set(self._configured_subnets)
        for ap in self.aps.nodes():
            subnets.update(self.aps.subnets_of(ap))
        ordered = sorted(subnets)
        actions: list[Action] = []
        if len(ordered) > MAX_SUBNETS:
            # One ScRegister carries at most MAX_SUBNETS subnets. Register
            # the lowest ones, so the other SCs still reach most clients.
            actions.append(
                ReportProblem(
                    "too-many-subnets",
                    f"SC {self.address} serves {len(ordered)} subnets, more than the"
                    f" {MAX_SUBNETS} one registration carries; the other SCs learn only the"
                    f" lowest {MAX_SUBNETS}, so roams into the other {len(ordered) - MAX_SUBNETS}"
                    " fail: move APs to another SC",
                )
            )
            ordered = ordered[:MAX_SUBNETS]
        actions.extend(self.discovery.set_subnets(ordered, now))
        return actions

    # Client details.

    def _on_iapp_add(self, peer: IPv4Address, message: IappAdd, now: float) -> list[Action]:
        if peer in self.ap_vlans:
            return self._iapp_add_from_ap(peer, message, now)
        self._require_sc(peer, message)
        return self._iapp_add_from_sc(peer, message, now)

    def _iapp_add_from_ap(self, ap: IPv4Address, message: IappAdd, now: float) -> list[Action]:
        message = attrs.evolve(message, ap=ap)
        previous = self.db.get(message.mac)
        record = _merge(previous, message, now, current_ap=ap, last_visited_ap=ap)
        if message.ip is not None and self.aps.serves(ap, message.ip):
            # At home: the three AP fields agree and the home SC is the SC
            # controlling the home AP.
            record = attrs.evolve(record, home_ap=ap, home_sc=self.address)
        elif message.ip is not None:
            record = attrs.evolve(record, home_sc=self.discovery.home_sc_for(message.ip))

        actions: list[Action] = []
        moved_from = previous.current_ap if previous is not None else None
        if moved_from in self.ap_vlans and moved_from != ap:
            actions.append(Send(moved_from, IappMove(message.mac, ap)))
        actions.extend(self._end_visit_elsewhere(message.mac, ap))
        self.db.put(record)
        if self.share_client_cache:
            actions.extend(Send(other, message) for other in self.aps.nodes() if other != ap)
            actions.extend(Send(sc, message) for sc in self.discovery.peers())
        return actions

    def _iapp_add_from_sc(self, sc: IPv4Address, message: IappAdd, now: float) -> list[Action]:
        previous = self.db.get(message.mac)
        last_visited = previous.last_visited_ap if previous is not None else None

        actions: list[Action] = []
        moved_from = previous.current_ap if previous is not None else None
        if moved_from in self.ap_vlans and message.ap is not None:
            actions.append(Send(moved_from, IappMove(message.mac, message.ap)))
        actions.extend(self._end_visit_elsewhere(message.mac, message.ap))
        self.db.put(_merge(previous, message, now, current_ap=None, last_visited_ap=last_visited))
        if self.share_client_cache:
            actions.extend(Send(ap, message) for ap in self.aps.nodes())
        return actions

    def _end_visit_elsewhere(self, mac: bytes, ap: IPv4Address | None) -> list[Action]:
        """
        End the client's visit at one of this SC's APs, because the client
        has associated with another AP.
        """
        visitor = self.db.get_visitor(mac)
        if visitor is None or visitor.ap == ap:
            return []
        self.db.delete_visitor(mac)
        return self._visit_cleanup(visitor)

    def _end_visit_home(self, mac: bytes, ap: IPv4Address) -> list[Action]:
        """
        End the client's visit here because C{ap} reports it at home. When
        the visit was at C{ap} itself (its cached address was wrong), that
        AP has already stopped tunnelling, and the client's old home SC
        drops the traveler on L{MscDeleteTraveler}.
        """
        visitor = self.db.delete_visitor(mac)
        if visitor is None:
            return []
        if visitor.ap != ap:
            return self._visit_cleanup(visitor)
        actions = self._visit_cleanup(visitor, notify_ap=False)
        if visitor.home_sc != self.address:
            actions.append(Send(visitor.home_sc, MscDeleteTraveler(mac, returned_to=ap)))
        return actions

    def _visit_cleanup(self, visitor: Visitor, *, notify_ap: bool = True) -> list[Action]:
        actions: list[Action] = []
        if notify_ap and visitor.ap in self.ap_vlans:
            actions.append(Send(visitor.ap, DeleteVisitor(visitor.mac)))
        actions.append(RemoveStaticEntry(visitor.mac, visitor.vlan_id))
        actions.append(ClearSourceEntry(visitor.mac, visitor.vlan_id))
        return actions

    # Foreign side.

    def _on_ap_add_traveler(
        self, ap: IPv4Address, message: ApAddTraveler, now: float
    ) -> list[Action]:
        self._require_ap(ap, message)
        if self.aps.serves(ap, message.ip):
            raise UnexpectedMessageError(
                f"ApAddTraveler from AP {ap} for a client with IP {message.ip}, which is"
                " inside the AP's own subnets; such a client is at home, not roaming"
            )
        home_sc = self.discovery.home_sc_for(message.ip)
        if home_sc is None:
            raise NoHomeControllerError(message.mac, message.ip)

        actions = self._end_visit_elsewhere(message.mac, ap)
        self.db.put_visitor(Visitor(message.mac, ap, home_sc, now, message.vlan_id))
        previous = self.db.get(message.mac)
        record = _merge(previous, message, now, current_ap=ap, last_visited_ap=ap)
        self.db.put(attrs.evolve(record, home_sc=home_sc))

        actions.append(AddStaticEntry(message.mac, ap, message.vlan_id))
        if home_sc != self.address:
            actions.append(SetSourceEntry(message.mac, home_sc, message.vlan_id))
        notice = MscAddTraveler(
            message.mac,
            message.ip,
            self.address,
            prefix=message.prefix,
            vap_id=message.vap_id,
            vlan_id=message.vlan_id,
        )
        actions.append(Send(home_sc, notice))
        return actions

    def _on_msc_delete_visitor(
        self, peer: IPv4Address, message: MscDeleteVisitor, now: float
    ) -> list[Action]:
        self._require_sc(peer, message)
        visitor = self.db.delete_visitor(message.mac)
        if visitor is None:
            return []
        record = self.db.get(message.mac)
        if record is not None and record.current_ap == visitor.ap:
            self.db.put(attrs.evolve(record, current_ap=None, updated=now))
        return self._visit_cleanup(visitor)

    # Home side.

    def _on_msc_add_traveler(
        self, peer: IPv4Address, message: MscAddTraveler, now: float
    ) -> list[Action]:
        self._require_sc(peer, message)
        if message.foreign_sc != peer:
            raise UnexpectedMessageError(
                f"MscAddTraveler from {peer} names foreign SC {message.foreign_sc};"
                " only the foreign SC itself may send it"
            )
        mac = message.mac
        home_ap = self._find_home_ap(mac, message.ip)
        previous = self.db.get_traveler(mac)

        actions: list[Action] = []
        if previous is not None and previous.foreign_sc != message.foreign_sc:
            actions.append(Send(previous.foreign_sc, MscDeleteVisitor(mac)))
        old_home_ap = previous.home_ap if previous is not None else None
        if old_home_ap in self.ap_vlans and old_home_ap != home_ap:
            actions.append(Send(old_home_ap, DeleteTraveler(mac)))
        actions.extend(self._notify_subnet_peers(mac, message.ip))

        self.db.put_traveler(Traveler(mac, message.foreign_sc, home_ap, now, message.vlan_id))
        # A client visiting another SC is associated with none of this SC's
        # APs; when this SC is the foreign SC too, the visit recorded it.
        location = {} if message.foreign_sc == self.address else {"current_ap": None}
        record = _merge(self.db.get(mac), message, now, **location)
        self.db.put(attrs.evolve(record, home_ap=home_ap, home_sc=self.address))

        if home_ap is not None and (previous is None or previous.home_ap != home_ap):
            actions.append(Send(home_ap, AddTraveler(mac, message.vap_id, message.vlan_id)))
        if message.foreign_sc != self.address:
            actions.append(AddStaticEntry(mac, message.foreign_sc, message.vlan_id))
        actions.append(SetSourceEntry(mac, home_ap, message.vlan_id))
        return actions

    def _find_home_ap(self, mac: bytes, ip: IPv4Address) -> IPv4Address | None:
        """
        Return the client's home AP: the one on record if it is still one of
        this SC's APs in the client's subnet, else the designated one (the
        lowest address among this SC's APs in that subnet), else C{None} to
        use the LAN port when this SC is directly on the subnet.

        @raise NoHomeAccessPointError: if none of these exists.
        """
        record = self.db.get(mac)
        known = record.home_ap if record is not None else None
        if known in self.ap_vlans and self.aps.serves(known, ip):
            return known
        candidates = self.aps.nodes_for(ip)
        if candidates:
            return candidates[0]
        if any(ip in subnet for subnet in self.lan_subnets):
            return None
        raise NoHomeAccessPointError(mac, ip)

    def _notify_subnet_peers(
        self, mac: bytes, ip: IPv4Address | None, returned_to: IPv4Address | None = None
    ) -> list[Action]:
        """
        Send L{MscDeleteTraveler} to the other SCs serving the client's
        subnet, one of which may control an AP still tunnelling for it.
        """
        if ip is None:
            return []
        notice = MscDeleteTraveler(mac, returned_to)
        others = [sc for sc in self.discovery.controllers_for(ip) if sc != self.address]
        return [Send(sc, notice) for sc in others]

    def _on_msc_delete_traveler(
        self, peer: IPv4Address, message: MscDeleteTraveler, now: float
    ) -> list[Action]:
        self._require_sc(peer, message)
        traveler = self.db.delete_traveler(message.mac)
        if traveler is None:
            return []
        actions: list[Action] = []
        if message.returned_to is not None:
            actions.append(Send(traveler.foreign_sc, MscDeleteVisitor(message.mac)))
        actions.extend(self._traveler_cleanup(traveler, keep_ap=None))
        return actions

    def _traveler_cleanup(self, traveler: Traveler, keep_ap: IPv4Address | None) -> list[Action]:
        actions: list[Action] = []
        if traveler.home_ap in self.ap_vlans and traveler.home_ap != keep_ap:
            actions.append(Send(traveler.home_ap, DeleteTraveler(traveler.mac)))
        actions.append(RemoveStaticEntry(traveler.mac, traveler.vlan_id))
        actions.append(ClearSourceEntry(traveler.mac, traveler.vlan_id))
        return actions

    def _on_ap_delete_traveler(
        self, ap: IPv4Address, message: ApDeleteTraveler, now: float
    ) -> list[Action]:
        self._require_ap(ap, message)
        mac = message.mac
        record = self.db.get(mac)
        ip = message.ip
        if ip is None and record is not None:
            ip = record.ip

        actions: list[Action] = self._end_visit_home(mac, ap)
        traveler = self.db.delete_traveler(mac)
        if traveler is not None:
            actions.append(Send(traveler.foreign_sc, MscDeleteVisitor(mac)))
            # The AP reporting the return stopped tunnelling by itself.
            actions.extend(self._traveler_cleanup(traveler, keep_ap=ap))
        actions.extend(self._notify_subnet_peers(mac, ip, returned_to=ap))

        if record is None:
            record = ClientRecord(mac, ip=ip)
        self.db.put(
            attrs.evolve(
                record,
                ip=ip,
                current_ap=ap,
                last_visited_ap=ap,
                home_ap=ap,
                home_sc=self.address,
                updated=now,
            )
        )
        return actions


def _merge(
    previous: ClientRecord | None,
    message: IappAdd | ApAddTraveler | MscAddTraveler,
    now: float,
    **location: IPv4Address | None,
) -> ClientRecord:
    """
    Return the client record after C{message}: its identity fields from the
    message (the cached IP address and prefix when the message has none),
    the location fields from C{location} or else from C{previous}.
    """
    if previous is None:
        previous = ClientRecord(message.mac)
    ip, prefix = message.ip, message.prefix
    if ip is None:
        ip, prefix = previous.ip, previous.prefix
    elif prefix is None and ip == previous.ip:
        prefix = previous.prefix
    pmk_cache = getattr(message, "pmk_cache", b"") or previous.pmk_cache
    return attrs.evolve(
        previous,
        ip=ip,
        prefix=prefix,
        vap_id=message.vap_id,
        vlan_id=message.vlan_id,
        pmk_cache=pmk_cache,
        updated=now,
        **location,
    )
