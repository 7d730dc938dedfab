# -*- test-case-name: tests.codec.test_ethernet -*-
"""
Tests for L{roaming.codec.ethernet}.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import ARP, IP, LLC, UDP, Dot1AD, Dot1Q, Dot3, Ether

from roaming.codec.ethernet import (
    BROADCAST,
    MAX_FRAME_LENGTH,
    MAX_VLAN_TAGS,
    EthernetFrame,
    EtherType,
    VlanTag,
    build_ethernet,
    format_mac,
    is_multicast,
    parse_ethernet,
    parse_mac,
)
from roaming.errors import DecodeError

from .support import mac, parse_or_decode_error, prefixes, run_tshark, scapy_bytes, write_pcap

CLIENT = "02:00:00:00:00:01"
ROUTER = "02:00:00:00:00:fe"


def scapy_vectors() -> dict[str, bytes]:
    """Frames that scapy builds, one per header form."""
    ip = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000, dport=2000) / b"payload"
    return {
        "untagged": scapy_bytes(Ether(dst=ROUTER, src=CLIENT) / ip),
        "dot1q": scapy_bytes(Ether(dst=ROUTER, src=CLIENT) / Dot1Q(vlan=20, prio=5) / ip),
        "qinq": scapy_bytes(
            Ether(dst=ROUTER, src=CLIENT) / Dot1AD(vlan=100, prio=3) / Dot1Q(vlan=20, dei=1) / ip
        ),
        "legacy-qinq": scapy_bytes(
            Ether(dst=ROUTER, src=CLIENT, type=0x9100) / Dot1Q(vlan=7) / Dot1Q(vlan=8) / ip
        ),
        "arp-padded": scapy_bytes(
            Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT) / ARP(psrc="10.0.0.1") / (b"\x00" * 18)
        ),
        "llc-padded": scapy_bytes(
            Dot3(dst="ff:ff:ff:ff:ff:ff", src=CLIENT, len=6)
            / LLC(dsap=0, ssap=0, ctrl=0xAF)
            / b"\x81\x01\x00"
            / (b"\x00" * 40)
        ),
    }


VECTORS = scapy_vectors()


def test_untagged_fields_match_scapy() -> None:
    frame = parse_ethernet(VECTORS["untagged"])
    reference = Ether(VECTORS["untagged"])
    assert frame.destination == mac(reference.dst)
    assert frame.source == mac(reference.src)
    assert frame.ethertype == reference.type == EtherType.IPV4
    assert frame.tags == ()
    assert frame.payload == bytes(reference.payload)


def test_dot1q_tag_matches_scapy() -> None:
    frame = parse_ethernet(VECTORS["dot1q"])
    reference = Ether(VECTORS["dot1q"])[Dot1Q]
    assert frame.tags == (VlanTag(vlan_id=reference.vlan, priority=reference.prio),)
    assert frame.ethertype == reference.type
    assert frame.vlan_id == 20


def test_qinq_tags_outermost_first() -> None:
    frame = parse_ethernet(VECTORS["qinq"])
    outer = Ether(VECTORS["qinq"])[Dot1AD]
    inner = Ether(VECTORS["qinq"])[Dot1Q]
    assert frame.tags[0] == VlanTag(outer.vlan, outer.prio, bool(outer.dei), EtherType.QINQ)
    assert frame.tags[1] == VlanTag(inner.vlan, inner.prio, bool(inner.dei), EtherType.VLAN)
    assert frame.vlan_id == inner.vlan
    assert frame.payload == bytes(Ether(VECTORS["qinq"])[IP])


def test_legacy_qinq_tpid() -> None:
    frame = parse_ethernet(VECTORS["legacy-qinq"])
    assert [tag.tpid for tag in frame.tags] == [0x9100, EtherType.VLAN]
    assert [tag.vlan_id for tag in frame.tags] == [7, 8]


def test_ethernet_ii_keeps_padding() -> None:
    frame = parse_ethernet(VECTORS["arp-padded"])
    assert frame.ethertype == EtherType.ARP
    assert len(frame.payload) == 28 + 18


def test_llc_length_drops_padding() -> None:
    frame = parse_ethernet(VECTORS["llc-padded"])
    reference = Ether(VECTORS["llc-padded"])
    assert isinstance(reference, Dot3)
    assert frame.ethertype is None
    assert len(frame.payload) == reference.len == 6
    assert frame.payload == b"\x00\x00\xaf\x81\x01\x00"


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_build_reproduces_scapy(name: str) -> None:
    data = VECTORS[name]
    frame = parse_ethernet(data)
    if frame.ethertype is None:
        # The 802.3 length excludes padding, so only the unpadded frame comes back.
        data = data[: 14 + len(frame.payload)]
    assert build_ethernet(frame) == data


def test_build_parsed_by_scapy() -> None:
    frame = EthernetFrame(
        destination=BROADCAST,
        source=mac(CLIENT),
        ethertype=EtherType.ARP,
        payload=bytes(28),
        tags=(VlanTag(300, 6, True, EtherType.QINQ), VlanTag(4094, 1)),
    )
    reference = Ether(build_ethernet(frame))
    assert reference.dst == "ff:ff:ff:ff:ff:ff"
    assert reference.src == CLIENT
    assert reference[Dot1AD].vlan == 300
    assert reference[Dot1AD].prio == 6
    assert reference[Dot1AD].dei == 1
    assert reference[Dot1Q].vlan == 4094
    assert reference[Dot1Q].prio == 1
    assert reference[Dot1Q].dei == 0
    assert reference[Dot1Q].type == EtherType.ARP


def test_build_llc_parsed_by_scapy() -> None:
    frame = EthernetFrame(BROADCAST, mac(CLIENT), None, b"\x42\x42\x03hello")
    reference = Ether(build_ethernet(frame))
    assert isinstance(reference, Dot3)
    assert reference.len == 8
    assert reference[LLC].dsap == 0x42
    assert reference[LLC].ssap == 0x42
    assert reference[LLC].ctrl == 3


def test_tshark_reads_tags(tmp_path) -> None:
    pcap = tmp_path / "ethernet.pcap"
    names = ["untagged", "dot1q", "qinq", "llc-padded"]
    write_pcap(pcap, [VECTORS[name] for name in names])
    rows = run_tshark(pcap, "eth.src", "eth.dst", "ieee8021ad.id", "vlan.id", "eth.len")
    expected_tags = {"untagged": ("", ""), "dot1q": ("", "20"), "qinq": ("100", "20")}
    for name, row in zip(names, rows, strict=True):
        frame = parse_ethernet(VECTORS[name])
        source, destination, service_vlan, customer_vlan, length = row
        assert source == format_mac(frame.source)
        assert destination == format_mac(frame.destination)
        if frame.ethertype is None:
            assert int(length) == len(frame.payload)
            continue
        assert service_vlan == expected_tags[name][0]
        assert customer_vlan == expected_tags[name][1]
        assert [tag.vlan_id for tag in frame.tags] == [int(v) for v in row[2:4] if v]


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_truncated_vectors(name: str) -> None:
    whole = parse_ethernet(VECTORS[name])
    for prefix in prefixes(VECTORS[name]):
        frame = parse_or_decode_error(parse_ethernet, prefix)
        if frame is None:
            continue
        if whole.ethertype is None:
            # Padding after the 802.3 length is not part of the frame.
            assert frame == whole
            continue
        # A prefix that still contains every header is a shorter Ethernet II frame.
        assert frame.destination == whole.destination
        assert frame.source == whole.source
        assert frame.tags == whole.tags
        assert frame.ethertype == whole.ethertype
        assert whole.payload.startswith(frame.payload)


def test_truncated_llc_always_rejected() -> None:
    data = VECTORS["llc-padded"][:20]
    for prefix in prefixes(data):
        with pytest.raises(DecodeError):
            parse_ethernet(prefix)


def test_runt_rejected() -> None:
    with pytest.raises(DecodeError, match="runt"):
        parse_ethernet(VECTORS["untagged"][:13])


def test_all_zero_rejected() -> None:
    with pytest.raises(DecodeError):
        parse_ethernet(bytes(60))


def test_oversized_rejected() -> None:
    with pytest.raises(DecodeError, match="exceeds the maximum"):
        parse_ethernet(VECTORS["untagged"] + bytes(MAX_FRAME_LENGTH))


def test_maximum_length_accepted() -> None:
    data = VECTORS["untagged"]
    frame = parse_ethernet(data + bytes(MAX_FRAME_LENGTH - len(data)))
    assert len(frame.payload) == MAX_FRAME_LENGTH - 14


def test_group_source_rejected() -> None:
    data = mac(ROUTER) + mac("01:00:5e:00:00:01") + b"\x08\x00" + bytes(46)
    with pytest.raises(DecodeError, match="group address"):
        parse_ethernet(data)


def test_reserved_vlan_id_rejected() -> None:
    data = mac(ROUTER) + mac(CLIENT) + b"\x81\x00\x0f\xff\x08\x00" + bytes(46)
    with pytest.raises(DecodeError, match="4095"):
        parse_ethernet(data)


def test_too_many_tags_rejected() -> None:
    tags = b"\x81\x00\x00\x01" * (MAX_VLAN_TAGS + 1)
    data = mac(ROUTER) + mac(CLIENT) + tags + b"\x08\x00" + bytes(46)
    with pytest.raises(DecodeError, match="stacked"):
        parse_ethernet(data)


@pytest.mark.parametrize("type_field", [0, 2, 1501, 1535])
def test_invalid_type_field_rejected(type_field: int) -> None:
    data = mac(ROUTER) + mac(CLIENT) + type_field.to_bytes(2, "big") + bytes(46)
    with pytest.raises(DecodeError):
        parse_ethernet(data)


def test_llc_length_beyond_frame_rejected() -> None:
    data = mac(ROUTER) + mac(CLIENT) + (100).to_bytes(2, "big") + bytes(46)
    with pytest.raises(DecodeError, match="exceeds"):
        parse_ethernet(data)


def test_build_rejects_tag_ethertype() -> None:
    with pytest.raises(ValueError, match="EtherType"):
        build_ethernet(EthernetFrame(BROADCAST, mac(CLIENT), EtherType.VLAN, b""))


def test_build_rejects_group_source() -> None:
    with pytest.raises(ValueError, match="individual"):
        build_ethernet(EthernetFrame(BROADCAST, BROADCAST, EtherType.IPV4, b""))


def test_mac_text_round_trip() -> None:
    assert format_mac(parse_mac("02-00-5E-10-00-01")) == "02:00:5e:10:00:01"


@pytest.mark.parametrize("text", ["02:00:5e:10:00", "02:00:5e:10:00:0g", "0200.5e10.0001"])
def test_invalid_mac_text_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="invalid MAC"):
        parse_mac(text)


def test_broadcast_is_multicast() -> None:
    assert is_multicast(BROADCAST)
    assert not is_multicast(mac(CLIENT))


individual_macs = st.binary(min_size=6, max_size=6).map(lambda b: bytes([b[0] & 0xFE]) + b[1:])
vlan_tags = st.builds(
    VlanTag,
    vlan_id=st.integers(0, 4094),
    priority=st.integers(0, 7),
    drop_eligible=st.booleans(),
    tpid=st.sampled_from([EtherType.VLAN, EtherType.QINQ, 0x9100]),
)
ethernet_ii_frames = st.builds(
    EthernetFrame,
    destination=st.binary(min_size=6, max_size=6),
    source=individual_macs.filter(lambda b: any(b)),
    ethertype=st.integers(0x0600, 0xFFFF).filter(lambda t: t not in (0x8100, 0x88A8, 0x9100)),
    payload=st.binary(max_size=200),
    tags=st.lists(vlan_tags, max_size=MAX_VLAN_TAGS).map(tuple),
)
llc_frames = st.builds(
    EthernetFrame,
    destination=st.binary(min_size=6, max_size=6),
    source=individual_macs.filter(lambda b: any(b)),
    ethertype=st.none(),
    payload=st.binary(min_size=3, max_size=200),
    tags=st.lists(vlan_tags, max_size=MAX_VLAN_TAGS).map(tuple),
)


@given(st.one_of(ethernet_ii_frames, llc_frames))
def test_round_trip(frame: EthernetFrame) -> None:
    assert parse_ethernet(build_ethernet(frame)) == frame


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    parse_or_decode_error(parse_ethernet, data)


@given(st.lists(st.sampled_from([b"\x81\x00", b"\x88\xa8", b"\x91\x00", b"\x00\x05"]), max_size=8))
def test_tag_stacks_raise_only_decode_error(words: list[bytes]) -> None:
    data = mac(ROUTER) + mac(CLIENT) + b"".join(words)
    parse_or_decode_error(parse_ethernet, data)
