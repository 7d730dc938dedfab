# -*- test-case-name: tests.codec.test_dhcp -*-
"""
Tests for L{roaming.codec.dhcp}.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import BOOTP, DHCP, IP, UDP, Ether
from scapy.layers.dhcp import DHCPRevOptions

from roaming.codec.dhcp import (
    MAGIC_COOKIE,
    BootpOperation,
    DhcpMessage,
    DhcpMessageType,
    DhcpOption,
    DhcpOptionCode,
    build_dhcp,
    parse_dhcp,
)
from roaming.errors import DecodeError

from .support import (
    ip_to_int,
    mac,
    parse_or_decode_error,
    prefixes,
    run_tshark,
    scapy_bytes,
    write_pcap,
)

CLIENT = mac("02:00:00:00:00:01")


def bootp(**fields: object) -> BOOTP:
    """Return a scapy BOOTP request from the test client."""
    return BOOTP(op=1, chaddr=CLIENT, xid=0x3903F326, **fields)


VECTORS = {
    "discover": scapy_bytes(
        bootp(flags=0x8000)
        / DHCP(options=[("message-type", "discover"), ("param_req_list", [1, 3, 6]), "end"])
    ),
    "request-selecting": scapy_bytes(
        bootp()
        / DHCP(
            options=[
                ("message-type", "request"),
                ("requested_addr", "10.1.0.5"),
                ("server_id", "10.1.0.1"),
                "end",
            ]
        )
    ),
    "request-renewing": scapy_bytes(
        bootp(ciaddr="10.1.0.5") / DHCP(options=[("message-type", "request"), "end"])
    ),
    "ack-padded": scapy_bytes(
        BOOTP(op=2, chaddr=CLIENT, yiaddr="10.1.0.5", siaddr="10.1.0.1", sname=b"dhcp-server")
        / DHCP(options=[("message-type", "ack"), ("lease_time", 3600), "end", "pad", "pad"])
    ),
}
MESSAGE_TYPES = {
    "discover": DhcpMessageType.DISCOVER,
    "request-selecting": DhcpMessageType.REQUEST,
    "request-renewing": DhcpMessageType.REQUEST,
    "ack-padded": DhcpMessageType.ACK,
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_fields_match_scapy(name: str) -> None:
    message = parse_dhcp(VECTORS[name])
    reference = BOOTP(VECTORS[name])
    assert message.op == reference.op
    assert message.xid == reference.xid
    assert message.flags == int(reference.flags)
    assert message.ciaddr == ip_to_int(reference.ciaddr)
    assert message.yiaddr == ip_to_int(reference.yiaddr)
    assert message.siaddr == ip_to_int(reference.siaddr)
    assert message.client_hardware_address == reference.chaddr[: reference.hlen]
    assert message.sname == reference.sname.rstrip(b"\x00")
    assert message.message_type == MESSAGE_TYPES[name]


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_options_match_scapy(name: str) -> None:
    message = parse_dhcp(VECTORS[name])
    scapy_names = [o[0] for o in BOOTP(VECTORS[name])[DHCP].options if isinstance(o, tuple)]
    assert [option.code for option in message.options] == [
        DHCPRevOptions[scapy_name][0] for scapy_name in scapy_names
    ]


def test_requested_address() -> None:
    message = parse_dhcp(VECTORS["request-selecting"])
    assert message.requested_address == ip_to_int("10.1.0.5")
    assert message.ciaddr == 0


def test_renewing_request_has_ciaddr() -> None:
    message = parse_dhcp(VECTORS["request-renewing"])
    assert message.ciaddr == ip_to_int("10.1.0.5")
    assert message.requested_address is None


@pytest.mark.parametrize("name", sorted(set(VECTORS) - {"ack-padded"}))
def test_build_reproduces_scapy(name: str) -> None:
    assert build_dhcp(parse_dhcp(VECTORS[name])) == VECTORS[name]


def test_build_parsed_by_scapy() -> None:
    message = DhcpMessage(
        op=BootpOperation.REQUEST,
        xid=0xDEADBEEF,
        client_hardware_address=CLIENT,
        options=(
            DhcpOption(DhcpOptionCode.MESSAGE_TYPE, bytes([DhcpMessageType.REQUEST])),
            DhcpOption(DhcpOptionCode.REQUESTED_ADDRESS, bytes([10, 2, 0, 7])),
            DhcpOption(DhcpOptionCode.HOST_NAME, b"laptop"),
        ),
        ciaddr=ip_to_int("10.2.0.7"),
    )
    reference = BOOTP(build_dhcp(message))
    assert reference.xid == 0xDEADBEEF
    assert reference.ciaddr == "10.2.0.7"
    assert reference.chaddr[:6] == CLIENT
    assert reference[DHCP].options == [
        ("message-type", 3),
        ("requested_addr", "10.2.0.7"),
        ("hostname", b"laptop"),
        "end",
    ]


def test_tshark_reads_fields(tmp_path) -> None:
    names = sorted(VECTORS)
    frames = [
        scapy_bytes(
            Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff")
            / IP(src="0.0.0.0", dst="255.255.255.255")
            / UDP(sport=68, dport=67)
            / BOOTP(VECTORS[name])
        )
        for name in names
    ]
    pcap = tmp_path / "dhcp.pcap"
    write_pcap(pcap, frames)
    fields = ["dhcp.option.dhcp", "dhcp.ip.client", "dhcp.hw.mac_addr", "dhcp.id"]
    rows = run_tshark(pcap, *fields, "dhcp.option.requested_ip_address")
    for name, row in zip(names, rows, strict=True):
        message = parse_dhcp(VECTORS[name])
        assert int(row[0]) == message.message_type
        assert ip_to_int(row[1]) == message.ciaddr
        assert mac(row[2]) == message.client_hardware_address
        assert int(row[3], 16) == message.xid
        if message.requested_address is None:
            assert row[4] == ""
        else:
            assert ip_to_int(row[4]) == message.requested_address


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_truncated_rejected(name: str) -> None:
    end = VECTORS[name].index(b"\xff", 240) + 1
    for prefix in prefixes(VECTORS[name][:end]):
        with pytest.raises(DecodeError):
            parse_dhcp(prefix)


def test_padding_after_end_ignored() -> None:
    message = parse_dhcp(VECTORS["ack-padded"])
    assert message.option(DhcpOptionCode.LEASE_TIME) == (3600).to_bytes(4, "big")


def test_all_zero_rejected() -> None:
    with pytest.raises(DecodeError, match="op 0"):
        parse_dhcp(bytes(300))


def test_missing_cookie_rejected() -> None:
    data = VECTORS["discover"][:236] + bytes(4) + VECTORS["discover"][240:]
    with pytest.raises(DecodeError, match="magic cookie"):
        parse_dhcp(data)


def test_missing_end_rejected() -> None:
    data = VECTORS["request-renewing"]
    with pytest.raises(DecodeError, match="END"):
        parse_dhcp(data[: data.index(b"\xff", 240)])


def test_option_past_end_rejected() -> None:
    data = VECTORS["discover"][:240] + b"\x0c\x10short"
    with pytest.raises(DecodeError, match="option 12"):
        parse_dhcp(data)


@pytest.mark.parametrize("code", [50, 53, 54])
def test_fixed_length_option_checked(code: int) -> None:
    data = VECTORS["discover"][:240] + bytes([code, 2, 1, 1, 255])
    with pytest.raises(DecodeError, match=f"option {code} has length 2"):
        parse_dhcp(data)


def test_long_hardware_length_rejected() -> None:
    data = bytearray(VECTORS["discover"])
    data[2] = 17
    with pytest.raises(DecodeError, match="hardware address length 17"):
        parse_dhcp(bytes(data))


def test_cookie_constant() -> None:
    assert bytes([99, 130, 83, 99]) == MAGIC_COOKIE


def test_build_rejects_long_option() -> None:
    message = DhcpMessage(1, 1, CLIENT, options=(DhcpOption(12, bytes(256)),))
    with pytest.raises(ValueError, match="RFC 3396"):
        build_dhcp(message)


def test_build_rejects_end_option() -> None:
    message = DhcpMessage(1, 1, CLIENT, options=(DhcpOption(255, b""),))
    with pytest.raises(ValueError, match="option code 255"):
        build_dhcp(message)


addresses = st.integers(0, 2**32 - 1)
fixed_length_options = st.one_of(
    st.builds(DhcpOption, st.just(53), st.binary(min_size=1, max_size=1)),
    st.builds(DhcpOption, st.sampled_from([50, 54]), st.binary(min_size=4, max_size=4)),
)
free_options = st.builds(
    DhcpOption,
    st.integers(1, 254).filter(lambda c: c not in (50, 53, 54)),
    st.binary(max_size=255),
)
messages = st.builds(
    DhcpMessage,
    op=st.sampled_from(BootpOperation),
    xid=addresses,
    client_hardware_address=st.binary(max_size=16),
    options=st.lists(st.one_of(fixed_length_options, free_options), max_size=6).map(tuple),
    htype=st.integers(0, 255),
    hops=st.integers(0, 255),
    secs=st.integers(0, 0xFFFF),
    flags=st.integers(0, 0xFFFF),
    ciaddr=addresses,
    yiaddr=addresses,
    siaddr=addresses,
    giaddr=addresses,
    sname=st.binary(max_size=64).map(lambda b: b.rstrip(b"\x00")),
    file=st.binary(max_size=128).map(lambda b: b.rstrip(b"\x00")),
)


@given(messages)
def test_round_trip(message: DhcpMessage) -> None:
    assert parse_dhcp(build_dhcp(message)) == message


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    parse_or_decode_error(parse_dhcp, data)


@given(st.binary(max_size=120))
def test_random_options_raise_only_decode_error(data: bytes) -> None:
    parse_or_decode_error(parse_dhcp, VECTORS["discover"][:240] + data)
