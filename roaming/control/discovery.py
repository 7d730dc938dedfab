# -*- test-case-name: tests.control.test_core_discovery -*-
"""
SC discovery: every SC learns every other SC and the subnets it serves.

Theory of operation
===================

One SC is configured as the primary. Every SC, the primary included, runs a
L{DiscoveryClient}; the primary also runs a L{PrimaryRegistry}.

When an SC's control connection to the primary comes up, the SC sends an
L{ScRegister} with its address and the subnets of the APs it controls. The
registry stores it, announces the new SC to every other registered SC
(L{ScAnnounce}), and announces every other SC to the newcomer. So after
registration each SC has learned all others, and the data plane follows: the
client brings a tunnel up towards each announced peer at once (the peer does
the same from its side), so tunnels exist before any client roams, and adds
a positive L3 knowledge entry for each peer subnet. Control messages between
two SCs travel over the connection to the primary when one of them is the
primary, and otherwise over a connection opened by the lower address. Where several SCs serve
one subnet, only the one with the lowest address gets the entry: that SC is
the home SC of the subnet's clients. A subnet whose home SC is this SC gets
no entry, because an SC never tunnels to itself.

When the primary loses the connection to an SC it withdraws it
(L{ScWithdraw}): every SC brings the tunnel to it down and removes its L3
entries. A reconfiguration starts a new round (L{DiscoveryRound}): every SC
registers again, the registry announces again, and a peer that is not
announced again before the round's deadline is withdrawn, on the clients and
in the registry alike. When an SC loses its connection to the primary it
keeps its peers, so traffic keeps flowing; on reconnection it registers
again and treats its peers as in a new round.

Both classes are sans-IO state machines: every input takes C{now} and
returns a list of L{roaming.control.actions} objects; C{next_deadline()}
gives the time at which C{expire(now)} must be called. Their transition
tables are the C{TRANSITIONS} class attributes; an event that a state does
not allow raises L{UnexpectedMessageError}.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network

from roaming.control.actions import (
    Action,
    AddL3Entry,
    ConnectPeer,
    L3Match,
    RemoveL3Entry,
    Send,
    TunnelDown,
    TunnelUp,
)
from roaming.control.clientdb import DatabaseFullError, SubnetTable
from roaming.control.messages import (
    DiscoveryRound,
    ScAnnounce,
    ScRegister,
    ScWithdraw,
    UnexpectedMessageError,
)

__all__ = [
    "DEFAULT_ROUND_TIMEOUT",
    "MAX_CONTROLLERS",
    "ClientState",
    "DiscoveryClient",
    "PrimaryRegistry",
    "RegistrationState",
]

#: Seconds an SC has to register again after a L{DiscoveryRound} before it is
#: withdrawn.
DEFAULT_ROUND_TIMEOUT = 10.0

#: Maximum number of SCs in one discovery domain.
MAX_CONTROLLERS = 1024


class RegistrationState(enum.Enum):
    """
    The primary's view of one SC.
    """

    ABSENT = "absent"
    REGISTERED = "registered"
    #: A new round started and the SC has not registered again yet.
    STALE = "stale"


class ClientState(enum.Enum):
    """
    An SC's discovery state.
    """

    #: No connection to the primary.
    DISCONNECTED = "disconnected"
    #: Registered and up to date.
    REGISTERED = "registered"
    #: Registered again for a new round, waiting for the announcements.
    ROUND = "round"


class PrimaryRegistry:
    """
    The primary SC's table of registered SCs.

    @param address: the primary's own address.
    """

    _R = RegistrationState
    #: (state, event) -> next state. Any pair not listed raises.
    TRANSITIONS = {
        (_R.ABSENT, "register"): _R.REGISTERED,
        (_R.REGISTERED, "register"): _R.REGISTERED,
        (_R.STALE, "register"): _R.REGISTERED,
        (_R.REGISTERED, "round"): _R.STALE,
        (_R.STALE, "round"): _R.STALE,
        (_R.ABSENT, "lost"): _R.ABSENT,
        (_R.REGISTERED, "lost"): _R.ABSENT,
        (_R.STALE, "lost"): _R.ABSENT,
        (_R.REGISTERED, "deadline"): _R.REGISTERED,
        (_R.STALE, "deadline"): _R.ABSENT,
    }

    def __init__(
        self,
        address: IPv4Address,
        *,
        round_timeout: float = DEFAULT_ROUND_TIMEOUT,
        max_controllers: int = MAX_CONTROLLERS,
    ) -> None:
        self.address = address
        self.round = 0
        self.round_timeout = round_timeout
        self.max_controllers = max_controllers
        self._subnets: dict[IPv4Address, tuple[IPv4Network, ...]] = {}
        self._states: dict[IPv4Address, RegistrationState] = {}
        self._deadline: float | None = None

    def state_of(self, sc: IPv4Address) -> RegistrationState:
        """
        Return the registration state of C{sc}.
        """
        return self._states.get(sc, RegistrationState.ABSENT)

    def registered(self) -> dict[IPv4Address, tuple[IPv4Network, ...]]:
        """
        Return every registered SC (stale ones included) and its subnets.
        """
        return dict(self._subnets)

    def _move(self, sc: IPv4Address, event: str) -> RegistrationState:
        state = self.state_of(sc)
        try:
            new = self.TRANSITIONS[state, event]
        except KeyError:
            raise UnexpectedMessageError(
                f"discovery registry: event {event!r} is not allowed for SC {sc}"
                f" in state {state.value}"
            ) from None
        if new is RegistrationState.ABSENT:
            self._states.pop(sc, None)
        else:
            self._states[sc] = new
        return new

    def register(self, peer: IPv4Address, message: ScRegister, now: float) -> list[Action]:
        """
        Record an SC's registration and announce it.

        @param peer: the authenticated address of the sender, which must be
            the address it registers.
        """
        if message.sc != peer:
            raise UnexpectedMessageError(
                f"SC {peer} tried to register address {message.sc}; an SC may"
                " register only its own address"
            )
        if peer not in self._subnets and len(self._subnets) >= self.max_controllers:
            raise DatabaseFullError(
                f"discovery registry is full with {self.max_controllers} SCs; SC {peer}"
                " was not registered: raise max_controllers"
            )
        # A new or stale SC is announced even when its subnets are unchanged,
        # because the others wait in their own round for its announcement.
        fresh = self.state_of(peer) is not RegistrationState.REGISTERED
        changed = self._subnets.get(peer) != message.subnets
        self._move(peer, "register")
        self._subnets[peer] = message.subnets

        actions: list[Action] = []
        if fresh or changed:
            announcement = ScAnnounce(peer, message.subnets, self.round)
            for other in self._others(peer):
                actions.append(Send(other, announcement))
        # Stale SCs are announced to the newcomer when they register again.
        for other in self._others(peer):
            if self.state_of(other) is RegistrationState.REGISTERED:
                actions.append(Send(peer, ScAnnounce(other, self._subnets[other], self.round)))
        return actions

    def lost(self, peer: IPv4Address, now: float) -> list[Action]:
        """
        Withdraw an SC whose connection to the primary has gone.
        """
        self._move(peer, "lost")
        return self._withdraw(peer)

    def start_round(self, now: float) -> list[Action]:
        """
        Start a new discovery round after a reconfiguration.
        """
        self.round += 1
        self._deadline = now + self.round_timeout
        actions: list[Action] = []
        for sc in sorted(self._subnets):
            self._move(sc, "round")
            actions.append(Send(sc, DiscoveryRound(self.round)))
        return actions

    def next_deadline(self) -> float | None:
        """
        Return when C{expire} must run next, or C{None}.
        """
        return self._deadline

    def expire(self, now: float) -> list[Action]:
        """
        Close the current round if its deadline has passed: withdraw every
        SC that did not register again.
        """
        if self._deadline is None or now < self._deadline:
            return []
        self._deadline = None
        actions: list[Action] = []
        for sc in sorted(self._subnets):
            if self._move(sc, "deadline") is RegistrationState.ABSENT:
                actions.extend(self._withdraw(sc))
        return actions

    def _withdraw(self, sc: IPv4Address) -> list[Action]:
        if self._subnets.pop(sc, None) is None:
            return []
        withdrawal = ScWithdraw(sc, self.round)
        return [Send(other, withdrawal) for other in self._others(sc)]

    def _others(self, sc: IPv4Address) -> list[IPv4Address]:
        return [other for other in sorted(self._subnets) if other != sc]


class DiscoveryClient:
    """
    One SC's side of discovery: its registration, its peers, and the
    tunnels and L3 knowledge entries that follow them.

    @param address: this SC's address.
    @param primary: the primary SC's address (possibly C{address}).
    @param subnets: the subnets of the APs this SC controls.
    """

    _C = ClientState
    #: (state, event) -> next state. Any pair not listed raises.
    TRANSITIONS = {
        (_C.DISCONNECTED, "primary_connected"): _C.ROUND,
        (_C.DISCONNECTED, "primary_lost"): _C.DISCONNECTED,
        (_C.DISCONNECTED, "subnets_changed"): _C.DISCONNECTED,
        (_C.REGISTERED, "announce"): _C.REGISTERED,
        (_C.REGISTERED, "withdraw"): _C.REGISTERED,
        (_C.REGISTERED, "round"): _C.ROUND,
        (_C.REGISTERED, "subnets_changed"): _C.REGISTERED,
        (_C.REGISTERED, "primary_lost"): _C.DISCONNECTED,
        (_C.ROUND, "announce"): _C.ROUND,
        (_C.ROUND, "withdraw"): _C.ROUND,
        (_C.ROUND, "round"): _C.ROUND,
        (_C.ROUND, "subnets_changed"): _C.ROUND,
        (_C.ROUND, "primary_lost"): _C.DISCONNECTED,
        (_C.ROUND, "deadline"): _C.REGISTERED,
    }

    def __init__(
        self,
        address: IPv4Address,
        primary: IPv4Address,
        subnets: Iterable[IPv4Network] = (),
        *,
        round_timeout: float = DEFAULT_ROUND_TIMEOUT,
        max_controllers: int = MAX_CONTROLLERS,
    ) -> None:
        self.address = address
        self.primary = primary
        self.round = 0
        self.round_timeout = round_timeout
        self.max_controllers = max_controllers
        self.state = ClientState.DISCONNECTED
        #: Every SC with its subnets, this one included.
        self.table = SubnetTable()
        self.table.set(address, tuple(subnets))
        self._stale: set[IPv4Address] = set()
        self._deadline: float | None = None
        self._l3_entries: dict[IPv4Network, IPv4Address] = {}

    @property
    def subnets(self) -> tuple[IPv4Network, ...]:
        """
        The subnets this SC serves.
        """
        return self.table.subnets_of(self.address)

    def peers(self) -> list[IPv4Address]:
        """
        Return every known peer SC, in address order.
        """
        return [sc for sc in self.table.nodes() if sc != self.address]

    def home_sc_for(self, ip: IPv4Address) -> IPv4Address | None:
        """
        Return the home SC for a client address: the lowest address among
        the SCs (this one included) serving its subnet.
        """
        return self.table.home_for(ip)

    def controllers_for(self, ip: IPv4Address) -> list[IPv4Address]:
        """
        Return every SC serving the subnet of C{ip}, in address order.
        """
        return self.table.nodes_for(ip)

    def l3_entries(self) -> dict[IPv4Network, IPv4Address]:
        """
        Return the L3 knowledge entries this client has asked for.
        """
        return dict(self._l3_entries)

    def _move(self, event: str) -> None:
        try:
            self.state = self.TRANSITIONS[self.state, event]
        except KeyError:
            raise UnexpectedMessageError(
                f"discovery on SC {self.address}: event {event!r} is not allowed in"
                f" state {self.state.value}"
            ) from None

    def _register(self) -> Send:
        return Send(self.primary, ScRegister(self.address, self.subnets, self.round))

    # Inputs.

    def primary_connected(self, now: float) -> list[Action]:
        """
        Register over the new connection to the primary. Known peers stay
        until the next deadline, unless the primary announces them again.
        """
        self._move("primary_connected")
        self._stale = set(self.peers())
        self._deadline = now + self.round_timeout
        return [self._register()]

    def primary_lost(self, now: float) -> list[Action]:
        """
        Note the loss of the primary; peers and tunnels stay as they are.
        """
        self._move("primary_lost")
        self._deadline = None
        self._stale.clear()
        return []

    def set_subnets(self, subnets: Iterable[IPv4Network], now: float) -> list[Action]:
        """
        Change this SC's own subnets and register them again.
        """
        subnets = tuple(subnets)
        if subnets == self.subnets:
            return []
        self._move("subnets_changed")
        before = self._snapshot()
        self.table.set(self.address, subnets)
        actions = self._apply(before)
        if self.state is not ClientState.DISCONNECTED:
            actions.append(self._register())
        return actions

    def receive(self, peer: IPv4Address, message: object, now: float) -> list[Action]:
        """
        Process an L{ScAnnounce}, L{ScWithdraw} or L{DiscoveryRound} from
        the primary.
        """
        if peer != self.primary:
            raise UnexpectedMessageError(
                f"{type(message).__name__} from {peer}, which is not the primary SC {self.primary}"
            )
        if isinstance(message, ScAnnounce):
            return self._announce(message)
        if isinstance(message, ScWithdraw):
            self._move("withdraw")
            return self._remove([message.sc])
        if isinstance(message, DiscoveryRound):
            return self._start_round(message, now)
        raise UnexpectedMessageError(f"discovery cannot process {type(message).__name__}")

    def next_deadline(self) -> float | None:
        """
        Return when C{expire} must run next, or C{None}.
        """
        return self._deadline

    def expire(self, now: float) -> list[Action]:
        """
        Withdraw the peers not announced again before the round's deadline.
        """
        if self._deadline is None or now < self._deadline:
            return []
        self._move("deadline")
        self._deadline = None
        stale = sorted(self._stale)
        self._stale.clear()
        return self._remove(stale)

    # Steps.

    def _announce(self, message: ScAnnounce) -> list[Action]:
        self._move("announce")
        sc = message.sc
        if sc == self.address:
            return []
        known = sc in self.table.nodes()
        if not known and len(self.table.nodes()) >= self.max_controllers:
            raise DatabaseFullError(
                f"SC {self.address} is full with {self.max_controllers} SCs; SC {sc} was"
                " not added: raise max_controllers"
            )
        self._stale.discard(sc)
        before = self._snapshot()
        self.table.set(sc, message.subnets)
        actions: list[Action] = []
        if not known:
            actions.append(TunnelUp(sc))
            # The registration connection already links every SC with the
            # primary; between two other SCs the lower address connects.
            if self.primary not in (self.address, sc) and self.address < sc:
                actions.append(ConnectPeer(sc))
        actions.extend(self._apply(before))
        return actions

    def _start_round(self, message: DiscoveryRound, now: float) -> list[Action]:
        self._move("round")
        self.round = message.round
        self._stale = set(self.peers())
        self._deadline = now + self.round_timeout
        return [self._register()]

    def _remove(self, scs: Iterable[IPv4Address]) -> list[Action]:
        before = self._snapshot()
        removed = []
        for sc in scs:
            if sc != self.address and sc in self.table.nodes():
                self.table.remove(sc)
                self._stale.discard(sc)
                removed.append(sc)
        actions = self._apply(before)
        actions.extend(TunnelDown(sc) for sc in removed)
        return actions

    def _snapshot(self) -> dict[IPv4Network, IPv4Address]:
        return dict(self._l3_entries)

    def _apply(self, before: dict[IPv4Network, IPv4Address]) -> list[Action]:
        """
        Recompute the L3 entries from the subnet table and return the
        removals and additions that turn C{before} into the new set.
        """
        after: dict[IPv4Network, IPv4Address] = {}
        for subnet in self.table.subnets():
            home = self.table.owners(subnet)[0]
            if home != self.address:
                after[subnet] = home
        self._l3_entries = after

        actions: list[Action] = []
        for subnet, sc in sorted(before.items()):
            if after.get(subnet) != sc:
                actions.append(RemoveL3Entry(subnet, sc))
        for subnet, sc in sorted(after.items()):
            if before.get(subnet) != sc:
                actions.append(AddL3Entry(subnet, sc, L3Match.POSITIVE))
        return actions
