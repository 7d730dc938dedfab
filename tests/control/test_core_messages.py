"""
Tests for the control message classes: construction, validation and the
MAC address helpers.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from roaming.control.messages import (
    MAX_PMK_CACHE_BYTES,
    MAX_SUBNETS,
    MESSAGE_TYPES,
    AddTraveler,
    ApAddTraveler,
    ApDeleteTraveler,
    ApRegister,
    DeleteTraveler,
    DeleteVisitor,
    DiscoveryRound,
    IappAdd,
    IappMove,
    InvalidMessageError,
    Keepalive,
    MscAddTraveler,
    MscDeleteTraveler,
    MscDeleteVisitor,
    ScAnnounce,
    ScRegister,
    ScWithdraw,
    format_mac,
    parse_mac,
)
from roaming.errors import DecodeError

MAC = bytes.fromhex("020000000001")
SC = IPv4Address("10.255.0.1")
AP = IPv4Address("10.1.0.11")
CLIENT = IPv4Address("10.1.0.100")
SUBNET = IPv4Network("10.1.0.0/24")

VALID = [
    ScRegister(SC, [SUBNET], 3),
    ScAnnounce(SC, [SUBNET]),
    ScWithdraw(SC, 2),
    DiscoveryRound(7),
    ApRegister(AP, [SUBNET], [10, 20]),
    Keepalive(5),
    IappAdd(MAC, CLIENT, 24, 1, 100, b"\x00" * 48, ap=AP),
    IappMove(MAC, AP),
    ApAddTraveler(MAC, CLIENT, prefix=24, vap_id=2, vlan_id=4094),
    ApDeleteTraveler(MAC, CLIENT),
    MscAddTraveler(MAC, CLIENT, SC, prefix=24),
    MscDeleteTraveler(MAC),
    MscDeleteVisitor(MAC),
    AddTraveler(MAC, 1, 100),
    DeleteTraveler(MAC),
    DeleteVisitor(MAC),
]


def test_every_type_has_valid_example() -> None:
    """
    The valid examples cover every message type.
    """
    assert {type(message) for message in VALID} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("message", VALID, ids=lambda message: type(message).__name__)
def test_frozen(message) -> None:
    """
    Messages cannot be changed after construction.
    """
    field = attrs.fields(type(message))[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(message, field, None)


def test_sequences_become_tuples() -> None:
    """
    List fields are stored as tuples, so messages are hashable.
    """
    message = ApRegister(AP, [SUBNET], [10])
    assert message.subnets == (SUBNET,)
    assert message.vlans == (10,)
    assert hash(message) == hash(ApRegister(AP, (SUBNET,), (10,)))


INVALID = [
    (lambda: DeleteVisitor(b"\x02\x00"), "mac", "6-byte"),
    (lambda: DeleteVisitor("02:00:00:00:00:01"), "mac", "6-byte"),
    (lambda: DeleteVisitor(bytes.fromhex("ffffffffffff")), "mac", "group"),
    (lambda: DeleteVisitor(bytes(6)), "mac", "all-zero"),
    (lambda: IappMove(MAC, "10.1.0.1"), "new_ap", "IPv4Address"),
    (lambda: IappMove(MAC, IPv4Address("0.0.0.0")), "new_ap", "unicast"),
    (lambda: IappMove(MAC, IPv4Address("224.0.0.1")), "new_ap", "unicast"),
    (lambda: IappMove(MAC, IPv4Address("255.255.255.255")), "new_ap", "unicast"),
    (lambda: IappAdd(MAC, prefix=24), "prefix", "without an IP"),
    (lambda: IappAdd(MAC, CLIENT, 33), "prefix", "0..32"),
    (lambda: IappAdd(MAC, vlan_id=4095), "vlan_id", "0..4094"),
    (lambda: IappAdd(MAC, vap_id=256), "vap_id", "0..255"),
    (lambda: IappAdd(MAC, vap_id=True), "vap_id", "not an integer"),
    (lambda: IappAdd(MAC, pmk_cache="key"), "pmk_cache", "not bytes"),
    (lambda: IappAdd(MAC, pmk_cache=bytes(MAX_PMK_CACHE_BYTES + 1)), "pmk_cache", "more than"),
    (lambda: ScRegister(SC, "10.1.0.0/24"), "subnets", "not a list"),
    (lambda: ScRegister(SC, ["10.1.0.0/24"]), "subnets", "IPv4Network"),
    (lambda: ScRegister(SC, [SUBNET, SUBNET]), "subnets", "twice"),
    (lambda: ScRegister(SC, [IPv4Network("0.0.0.0/0")]), "subnets", "0.0.0.0/0"),
    (lambda: ScRegister(SC, [SUBNET], -1), "round", "outside"),
    (lambda: ApRegister(AP, [SUBNET], [0]), "vlans", "1..4094"),
    (lambda: ApRegister(AP, [SUBNET], [5, 5]), "vlans", "twice"),
    (lambda: DiscoveryRound(2**32), "round", "outside"),
    (lambda: Keepalive("1"), "sequence", "not an integer"),
    (lambda: MscAddTraveler(MAC, CLIENT, None), "foreign_sc", "IPv4Address"),
    (lambda: ApAddTraveler(MAC, None), "ip", "IPv4Address"),
]


@pytest.mark.parametrize(("build", "field", "reason"), INVALID)
def test_invalid_field_named(build, field: str, reason: str) -> None:
    """
    Each invalid field raises InvalidMessageError naming the field and the
    reason.
    """
    with pytest.raises(InvalidMessageError) as raised:
        build()
    assert raised.value.field == field
    assert reason in str(raised.value)


def test_too_many_subnets() -> None:
    """
    A registration lists at most MAX_SUBNETS subnets.
    """
    subnets = [IPv4Network(f"10.{n // 256}.{n % 256}.0/24") for n in range(MAX_SUBNETS + 1)]
    with pytest.raises(InvalidMessageError, match="more than"):
        ScRegister(SC, subnets)
    assert len(ScRegister(SC, subnets[:MAX_SUBNETS]).subnets) == MAX_SUBNETS


def test_invalid_message_is_decode_error() -> None:
    """
    Adapters catch invalid messages with the other malformed input.
    """
    with pytest.raises(DecodeError) as raised:
        DeleteVisitor(b"")
    assert raised.value.protocol == "control"
    assert isinstance(raised.value, ValueError)


@given(st.binary(max_size=8))
def test_mac_validation(value: bytes) -> None:
    """
    Any 6-byte unicast, non-zero value is accepted; everything else raises
    InvalidMessageError naming the mac field.
    """
    valid = len(value) == 6 and not value[0] & 1 and any(value)
    try:
        message = DeleteTraveler(value)
    except InvalidMessageError as error:
        assert not valid
        assert error.field == "mac"
    else:
        assert valid
        assert message.mac == value


@given(st.integers(-10, 5000), st.integers(-10, 300), st.one_of(st.none(), st.integers(-5, 40)))
def test_numeric_fields(vlan_id: int, vap_id: int, prefix: int | None) -> None:
    """
    The VLAN ID, VAP ID and prefix length are accepted exactly inside their
    ranges.
    """
    valid = 0 <= vlan_id <= 4094 and 0 <= vap_id <= 255 and (prefix is None or 0 <= prefix <= 32)
    try:
        message = ApAddTraveler(MAC, CLIENT, prefix=prefix, vap_id=vap_id, vlan_id=vlan_id)
    except InvalidMessageError as error:
        assert not valid
        assert error.field in {"vlan_id", "vap_id", "prefix"}
    else:
        assert valid
        assert (message.vlan_id, message.vap_id, message.prefix) == (vlan_id, vap_id, prefix)


@given(st.lists(st.integers(0, 2**32 - 1), max_size=6))
def test_address_fields(values: list[int]) -> None:
    """
    Any unicast IPv4 address is accepted as an SC address; the unspecified,
    multicast and limited broadcast addresses are not.
    """
    for value in values:
        address = IPv4Address(value)
        valid = not (address.is_unspecified or address.is_multicast or value == 2**32 - 1)
        try:
            ScWithdraw(address)
        except InvalidMessageError as error:
            assert not valid
            assert error.field == "sc"
        else:
            assert valid


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)), max_size=8))
def test_subnet_lists(pairs: list[tuple[int, int]]) -> None:
    """
    A subnet list is accepted when it has no duplicate and no default
    route, and it keeps its order.
    """
    subnets = [IPv4Network((value, prefix), strict=False) for value, prefix in pairs]
    valid = len(set(subnets)) == len(subnets) and all(s.prefixlen > 0 for s in subnets)
    try:
        message = ScAnnounce(SC, subnets)
    except InvalidMessageError as error:
        assert not valid
        assert error.field == "subnets"
    else:
        assert valid
        assert message.subnets == tuple(subnets)


def test_parse_and_format_mac() -> None:
    """
    MAC addresses convert between text and bytes, with : or - separators.
    """
    assert parse_mac("02:00:00:00:00:01") == MAC
    assert parse_mac("02-00-00-00-00-01") == MAC
    assert parse_mac("0A:bB:00:00:00:01") == bytes.fromhex("0abb00000001")
    assert format_mac(bytes.fromhex("0abb00000001")) == "0a:bb:00:00:00:01"


@pytest.mark.parametrize("text", ["", "02:00:00:00:00", "02:00:00:00:00:0g", "2:0:0:0:0:1"])
def test_parse_mac_invalid(text: str) -> None:
    """
    Malformed MAC text raises InvalidMessageError that quotes it.
    """
    with pytest.raises(InvalidMessageError, match="hexadecimal"):
        parse_mac(text)
