# -*- test-case-name: tests.control.test_core_messages -*-
"""
The control plane's messages as plain, validated data.

Three kinds of node exchange these messages: the primary service controller
(SC) that runs discovery, the other SCs, and the access points (APs) that each
SC controls. A roaming client is a I{traveler} when seen from its home side
(its home SC and home AP tunnel traffic towards it) and a I{visitor} when seen
from the foreign side (the foreign SC and the foreign AP it is associated
with).

Each class is one message. Its docstring names the sender and the receiver
and describes what the receiver does. The wire layer maps each class onto
one AMP command, and the role objects in L{roaming.control.sc},
L{roaming.control.ap} and L{roaming.control.discovery} implement the
processing on receipt.

Types used in every message:

  - a MAC address is 6 bytes of C{bytes}, a unicast address that is not all
    zero (L{parse_mac} and L{format_mac} convert the usual text form);
  - an IPv4 address is an L{ipaddress.IPv4Address};
  - a subnet is an L{ipaddress.IPv4Network};
  - a client's network prefix is the prefix length, an C{int} from 0 to 32.

Construction validates every field and raises L{InvalidMessageError}, which
names the field, for a value of the wrong type or out of range. Every
sequence field is stored as a C{tuple} and has a maximum length, so a
hostile peer cannot make a node hold an unbounded message.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import attrs

from roaming.errors import DecodeError, RoamingError

__all__ = [
    "MAX_PMK_CACHE_BYTES",
    "MAX_SUBNETS",
    "MAX_VAP_ID",
    "MAX_VLANS",
    "MAX_VLAN_ID",
    "MESSAGE_TYPES",
    "AddTraveler",
    "ApAddTraveler",
    "ApDeleteTraveler",
    "ApRegister",
    "ControlError",
    "DeleteTraveler",
    "DeleteVisitor",
    "DiscoveryRound",
    "IappAdd",
    "IappMove",
    "InvalidMessageError",
    "Keepalive",
    "Message",
    "MscAddTraveler",
    "MscDeleteTraveler",
    "MscDeleteVisitor",
    "NoHomeAccessPointError",
    "NoHomeControllerError",
    "ScAnnounce",
    "ScRegister",
    "ScWithdraw",
    "UnexpectedMessageError",
    "format_mac",
    "parse_mac",
]

#: Maximum number of subnets in one registration or announcement: twice an
#: SC with 1,000 APs, each with its own subnet. AMP limits one value to 65,535
#: bytes, and each subnet takes at most 20 of them in an AMP list (a 2-byte
#: length and up to 18 characters such as "255.255.255.255/32"), so 3,000
#: subnets would still fit in one message.
MAX_SUBNETS = 2048

#: Maximum number of VLAN IDs an AP may register.
MAX_VLANS = 4094

#: Highest valid VLAN ID (IEEE 802.1Q-2018 section 9.6: 0xFFF is reserved).
#: VLAN ID 0 means "untagged" in these messages.
MAX_VLAN_ID = 4094

#: Highest virtual AP (VAP) identifier.
# NOTE: 255 is a project limit, not a standard one; raise it together with
# the GRE key layout if an AP ever needs more VAPs.
MAX_VAP_ID = 255

#: Maximum size of the opaque PMK cache data carried by L{IappAdd}. One
#: cached PMKSA is a 32-byte PMK, a 16-byte PMKID and a few bytes of
#: lifetime and AKM; 1024 bytes leaves room for several without letting a
#: peer make a node store large blobs for every client.
MAX_PMK_CACHE_BYTES = 1024

#: Maximum value of the 32-bit counters (discovery round, keepalive sequence).
_MAX_U32 = 0xFFFFFFFF


class ControlError(RoamingError):
    """
    Base class of the control plane's errors.
    """


class InvalidMessageError(ControlError, DecodeError):
    """
    A control message with a missing, mistyped or out-of-range field.

    It is a L{DecodeError} with C{protocol} C{"control"}, so adapters count
    and reject it like any other malformed input.

    @ivar field: name of the invalid field.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__("control", f"invalid {field}: {message}")
        self.field = field


class NoHomeAccessPointError(ControlError):
    """
    The home SC controls no AP in the traveler's subnet, so it can neither
    find nor designate a home AP. The wire layer returns this to the
    foreign SC as an error response.

    @ivar mac: the traveler's MAC address.
    """

    def __init__(self, mac: bytes, ip: IPv4Address | None) -> None:
        super().__init__(
            f"no home AP for client {format_mac(mac)} (IP {ip}): this SC controls"
            " no AP in the client's subnet; register such an AP or fix the subnet"
            " configuration"
        )
        self.mac = mac


class NoHomeControllerError(ControlError):
    """
    No known SC serves a roaming client's subnet, so the client's traffic
    has no home to go to. The SC returns this to the AP as an error
    response.
    """

    def __init__(self, mac: bytes, ip: IPv4Address) -> None:
        super().__init__(
            f"no SC serves the subnet of client {format_mac(mac)} (IP {ip}):"
            " register the SC for that subnet with the primary SC"
        )
        self.mac = mac


class UnexpectedMessageError(ControlError):
    """
    A message arrived from a peer that may not send it, such as a traveler
    notice from an AP that never registered, or a state change that the
    receiver's state machine does not allow.
    """


def parse_mac(text: str) -> bytes:
    """
    Convert a MAC address written as six hexadecimal pairs separated by
    C{:} or C{-} into 6 bytes.

    @raise InvalidMessageError: if C{text} is not such an address.
    """
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(part) == 2 for part in parts):
        raise InvalidMessageError("mac", f"{text!r} is not six hexadecimal pairs")
    try:
        return bytes(int(part, 16) for part in parts)
    except ValueError:
        raise InvalidMessageError("mac", f"{text!r} is not six hexadecimal pairs") from None


def format_mac(mac: bytes) -> str:
    """
    Format 6 bytes as a lower-case, colon-separated MAC address.
    """
    return mac.hex(":")


# Validators.  Each raises InvalidMessageError naming the attrs field.


def _check_mac(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, bytes) or len(value) != 6:
        raise InvalidMessageError(attribute.name, f"{value!r} is not a 6-byte MAC address")
    if value[0] & 0x01:
        # IEEE 802-2014 section 8.2: the I/G bit set means a group address,
        # which never names one client.
        raise InvalidMessageError(attribute.name, f"{format_mac(value)} is a group address")
    if value == bytes(6):
        raise InvalidMessageError(attribute.name, "the all-zero MAC address names no client")


def _check_address(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, IPv4Address):
        raise InvalidMessageError(attribute.name, f"{value!r} is not an IPv4Address")
    # 0.0.0.0, 224.0.0.0/4 (RFC 5771) and 255.255.255.255 name no single node.
    number = int(value)
    if number == 0 or number >> 28 == 0xE or number == _MAX_U32:
        raise InvalidMessageError(attribute.name, f"{value} is not a unicast address")


def _check_optional_address(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None:
        _check_address(instance, attribute, value)


def _check_range(low: int, high: int):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        # bool is an int subclass, but True is never a meaningful VLAN or count.
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidMessageError(attribute.name, f"{value!r} is not an integer")
        if not low <= value <= high:
            raise InvalidMessageError(attribute.name, f"{value} is outside {low}..{high}")

    return check


_PREFIX_LENGTH = _check_range(0, 32)


def _check_prefix(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    _PREFIX_LENGTH(instance, attribute, value)
    if instance.ip is None:
        raise InvalidMessageError(attribute.name, "a prefix length was given without an IP address")


def _check_subnets(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if len(value) > MAX_SUBNETS:
        raise InvalidMessageError(attribute.name, f"{len(value)} subnets, more than {MAX_SUBNETS}")
    for subnet in value:
        if not isinstance(subnet, IPv4Network):
            raise InvalidMessageError(attribute.name, f"{subnet!r} is not an IPv4Network")
        if subnet.prefixlen == 0:
            raise InvalidMessageError(attribute.name, "0.0.0.0/0 is not an AP subnet")
    if len(set(value)) != len(value):
        raise InvalidMessageError(attribute.name, "a subnet is listed twice")


def _check_vlans(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if len(value) > MAX_VLANS:
        raise InvalidMessageError(attribute.name, f"{len(value)} VLAN IDs, more than {MAX_VLANS}")
    for vlan in value:
        _check_range(1, MAX_VLAN_ID)(instance, attribute, vlan)
    if len(set(value)) != len(value):
        raise InvalidMessageError(attribute.name, "a VLAN ID is listed twice")


def _check_pmk_cache(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, bytes):
        raise InvalidMessageError(attribute.name, f"{type(value).__name__} is not bytes")
    if len(value) > MAX_PMK_CACHE_BYTES:
        raise InvalidMessageError(
            attribute.name, f"{len(value)} bytes, more than {MAX_PMK_CACHE_BYTES}"
        )


def _tuple_of(name: str):
    def convert(value: Iterable[Any]) -> tuple[Any, ...]:
        # Only real sequences: a str or bytes would otherwise become a tuple
        # of characters and fail the element checks with a confusing message.
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise InvalidMessageError(name, f"{value!r} is not a list")
        return tuple(value)

    return convert


def _subnets_field() -> Any:
    return attrs.field(converter=_tuple_of("subnets"), validator=_check_subnets)


_VLAN_ID = _check_range(0, MAX_VLAN_ID)
_VAP_ID = _check_range(0, MAX_VAP_ID)
_U32 = _check_range(0, _MAX_U32)


class Message:
    """
    Base class of every control message.
    """

    __slots__ = ()


def _message(cls: type) -> type:
    return attrs.frozen(cls, slots=True)


# Discovery: SC <-> primary SC, AP <-> SC.


@_message
class ScRegister(Message):
    """
    An SC registers with the primary SC.

    Sent by every SC (the primary included, to itself through its own
    registry) when its connection to the primary comes up, on each new
    L{DiscoveryRound}, and again whenever its AP subnets change. The primary
    stores the registration and sends an L{ScAnnounce} for it to every other
    registered SC, and an L{ScAnnounce} for each other SC to the sender.
    """

    #: The SC's own address, the endpoint of every tunnel towards it.
    sc: IPv4Address = attrs.field(validator=_check_address)
    #: Every subnet of the APs that this SC controls.
    subnets: tuple[IPv4Network, ...] = attrs.field(
        converter=_tuple_of("subnets"), validator=_check_subnets
    )
    #: The discovery round of this registration, or 0 before any round.
    round: int = attrs.field(default=0, validator=_U32)


@_message
class ScAnnounce(Message):
    """
    The primary SC announces another SC and the subnets it serves.

    The receiver records the peer, brings a tunnel up towards it, and adds a
    positive L3 knowledge entry pointing at that tunnel for each of its
    subnets. If the receiver's address is the lower of the two and neither
    is the primary, the receiver also opens the control connection. An
    announcement for a known peer with other subnets replaces the peer's L3
    entries.
    """

    sc: IPv4Address = attrs.field(validator=_check_address)
    subnets: tuple[IPv4Network, ...] = attrs.field(
        converter=_tuple_of("subnets"), validator=_check_subnets
    )
    round: int = attrs.field(default=0, validator=_U32)


@_message
class ScWithdraw(Message):
    """
    The primary SC withdraws an SC that has gone.

    Sent when the primary loses its connection to a registered SC. The
    receiver brings the tunnel to that SC down and removes the L3 knowledge
    entries that pointed at it.
    """

    sc: IPv4Address = attrs.field(validator=_check_address)
    round: int = attrs.field(default=0, validator=_U32)


@_message
class DiscoveryRound(Message):
    """
    The primary SC starts a new discovery round after a reconfiguration.

    Every SC replies with a fresh L{ScRegister} carrying this round number.
    Peers that the primary does not announce again within the round's time
    limit are withdrawn as if the primary had sent L{ScWithdraw} for them.
    """

    round: int = attrs.field(validator=_U32)


@_message
class ApRegister(Message):
    """
    An AP registers with the SC that controls it.

    Sent by the AP when its control connection to the SC comes up. The SC
    records the AP and its subnets, brings a tunnel up towards it (the AP
    brings up its end at the same time, so the tunnel exists before any
    client roams). It sends the AP L{AddTraveler} again for each traveler
    whose home AP it is, because the AP may have restarted. The SC's own
    subnets become the union of its APs' subnets, and it registers them
    again with the primary if they changed.
    """

    ap: IPv4Address = attrs.field(validator=_check_address)
    subnets: tuple[IPv4Network, ...] = attrs.field(
        converter=_tuple_of("subnets"), validator=_check_subnets
    )
    #: The VLAN IDs of the AP's bridges (empty when the AP uses none).
    vlans: tuple[int, ...] = attrs.field(
        default=(), converter=_tuple_of("vlans"), validator=_check_vlans
    )


@_message
class Keepalive(Message):
    """
    Proof of life on a control connection, sent by either end.

    The receiver only notes that the peer is alive; a peer silent for longer
    than the configured limit is treated as lost.
    """

    sequence: int = attrs.field(default=0, validator=_U32)


# Client details: AP <-> SC, SC <-> SC.


@_message
class IappAdd(Message):
    """
    A client has associated, or its IP address has become known.

    Sent by an AP to its SC when a client associates (IP fields empty unless
    the AP's cache has them) and again once the bridge has seen the
    client's first IP packet. The SC updates its client database (deciding
    whether the client is at home from the sending AP's subnets), sends
    L{IappMove} to the AP where the client was before, and shares the client
    details with its other APs and with the other SCs. An SC that receives
    one from another SC stores the details and passes them on to its own
    APs. An AP that receives one stores the details in its client cache.
    """

    mac: bytes = attrs.field(validator=_check_mac)
    #: The client's IP address, or C{None} while it is unknown.
    ip: IPv4Address | None = attrs.field(default=None, validator=_check_optional_address)
    #: The client's network prefix length, or C{None} when unknown.
    prefix: int | None = attrs.field(default=None, validator=_check_prefix)
    vap_id: int = attrs.field(default=0, validator=_VAP_ID)
    #: The VLAN ID the client's traffic uses (0: untagged), which may have
    #: come from a RADIUS attribute at authentication.
    vlan_id: int = attrs.field(default=0, validator=_VLAN_ID)
    #: Opaque PMK cache data for fast re-authentication at another AP.
    pmk_cache: bytes = attrs.field(default=b"", validator=_check_pmk_cache, repr=False)
    #: The AP the client associated with. The sending AP may leave it empty
    #: because the SC has the sender's address, and an SC fills it in
    #: before sharing.
    ap: IPv4Address | None = attrs.field(default=None, validator=_check_optional_address)


@_message
class IappMove(Message):
    """
    A client has moved to another AP.

    Sent by an SC to the AP where the client was associated before. The AP
    removes the client from its table of associated stations (the client is
    no longer there) but keeps its cached details.
    """

    mac: bytes = attrs.field(validator=_check_mac)
    #: The AP the client is associated with now.
    new_ap: IPv4Address = attrs.field(validator=_check_address)


# Traveler and visitor notices.


@_message
class ApAddTraveler(Message):
    """
    A foreign AP has a roaming client.

    Sent by an AP to its SC when its bridge detects an associated client
    whose IP address lies outside the AP's subnets, or at association when
    the cached IP address lies outside them (proactive tunnelling). The SC records the
    client as its visitor at this AP and sends L{MscAddTraveler} to the
    client's home SC, the SC with the lowest address among those serving
    the client's subnet. When that is the SC itself (one SC serving several
    subnets) it processes the traveler locally instead of tunnelling to
    itself.
    """

    mac: bytes = attrs.field(validator=_check_mac)
    ip: IPv4Address = attrs.field(validator=_check_address)
    prefix: int | None = attrs.field(default=None, validator=_check_prefix)
    vap_id: int = attrs.field(default=0, validator=_VAP_ID)
    vlan_id: int = attrs.field(default=0, validator=_VLAN_ID)


@_message
class ApDeleteTraveler(Message):
    """
    A client has associated with an AP in its home subnet.

    Sent by an AP to its SC on every association of a client at home: the AP
    cannot tell a first association from a return home. The SC ends any
    roam of the client: it drops the client from its traveler list, sends
    L{MscDeleteVisitor} to the foreign SC, L{DeleteTraveler} to the old home
    AP if that AP is another of its own, and L{MscDeleteTraveler} to the
    other SCs serving the same subnet.
    """

    mac: bytes = attrs.field(validator=_check_mac)
    ip: IPv4Address | None = attrs.field(default=None, validator=_check_optional_address)


@_message
class MscAddTraveler(Message):
    """
    A client from this SC's subnets is visiting another SC's AP.

    Sent by the foreign SC to the client's home SC. The home SC finds the
    client's home AP (or designates one of its own APs in the client's
    subnet, or raises L{NoHomeAccessPointError}); sends L{MscDeleteVisitor} to
    the previous foreign SC if the client was already its traveler through
    another SC; sends L{MscDeleteTraveler} to the other SCs serving the same
    subnet; sends L{AddTraveler} to the home AP; and points its bridge's
    traffic for the client at the foreign SC's tunnel.
    """

    mac: bytes = attrs.field(validator=_check_mac)
    ip: IPv4Address = attrs.field(validator=_check_address)
    #: The foreign SC that now serves the client.
    foreign_sc: IPv4Address = attrs.field(validator=_check_address)
    prefix: int | None = attrs.field(default=None, validator=_check_prefix)
    vap_id: int = attrs.field(default=0, validator=_VAP_ID)
    vlan_id: int = attrs.field(default=0, validator=_VLAN_ID)


@_message
class MscDeleteTraveler(Message):
    """
    Another SC has become the client's home SC, or the client is back home.

    Sent by an SC to every other SC serving the same subnet (several SCs in
    one subnet), and by a foreign SC to the home SC when the client's real
    address turns out to be in the foreign subnet. The receiver sends
    L{DeleteTraveler} to its AP that is the client's home AP, if it has one,
    and removes the traveler. For a return home (C{returned_to} set) it also
    sends L{MscDeleteVisitor} to the traveler's foreign SC.
    """

    mac: bytes = attrs.field(validator=_check_mac)
    #: The AP in its home subnet that the client has associated with, when
    #: the notice reports a return home. Empty when another SC has become
    #: the client's home SC, because then the visit goes on.
    returned_to: IPv4Address | None = attrs.field(default=None, validator=_check_optional_address)


@_message
class MscDeleteVisitor(Message):
    """
    The client no longer visits the receiving SC.

    Sent by the home SC to the previous foreign SC when the client roams on
    to another foreign SC or comes back home. The receiver removes the
    client from its visitor list and sends L{DeleteVisitor} to the AP that
    was tunnelling the client's traffic.
    """

    mac: bytes = attrs.field(validator=_check_mac)


@_message
class AddTraveler(Message):
    """
    Start tunnelling a traveler's traffic to the SC.

    Sent by the home SC to the client's home AP. The AP then sends every
    unicast frame for the client received on its LAN port, and the multicast
    and broadcast frames, through its tunnel to the SC. It also sends a
    layer 2 update frame for the client, so that switches learn the client's
    MAC address at this AP's port.
    """

    mac: bytes = attrs.field(validator=_check_mac)
    vap_id: int = attrs.field(default=0, validator=_VAP_ID)
    vlan_id: int = attrs.field(default=0, validator=_VLAN_ID)


@_message
class DeleteTraveler(Message):
    """
    Stop tunnelling a traveler's traffic.

    Sent by an SC to an AP that was a client's home AP. The AP stops
    tunnelling unicast frames for the client, and stops tunnelling multicast
    and broadcast frames once it has no traveler left.
    """

    mac: bytes = attrs.field(validator=_check_mac)


@_message
class DeleteVisitor(Message):
    """
    Forget a visitor.

    Sent by the foreign SC to the AP that was serving a visiting client,
    when the client roams to another AP or goes home. The AP removes the
    client from its table of associated stations and from its visitor list,
    and clears the client's source forwarding entry in its bridge.
    """

    mac: bytes = attrs.field(validator=_check_mac)


#: Every message class, for the wire layer's command table and for tests.
MESSAGE_TYPES: tuple[type[Message], ...] = (
    ScRegister,
    ScAnnounce,
    ScWithdraw,
    DiscoveryRound,
    ApRegister,
    Keepalive,
    IappAdd,
    IappMove,
    ApAddTraveler,
    ApDeleteTraveler,
    MscAddTraveler,
    MscDeleteTraveler,
    MscDeleteVisitor,
    AddTraveler,
    DeleteTraveler,
    DeleteVisitor,
)
