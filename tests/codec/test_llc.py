# -*- test-case-name: tests.codec.test_llc -*-
"""
Tests for L{roaming.codec.llc}.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import LLC, SNAP, Dot1Q, Dot3, Ether

from roaming.codec.ethernet import BROADCAST, EthernetFrame, parse_ethernet
from roaming.codec.llc import (
    XID_CONTROL,
    Layer2Update,
    LlcPdu,
    build_layer2_update,
    build_llc,
    parse_layer2_update,
    parse_llc,
)
from roaming.errors import DecodeError

from .support import mac, parse_or_decode_error, prefixes, run_tshark_json, scapy_bytes, write_pcap

STATION = "02:11:22:33:44:55"

# The layer 2 update as IEEE 802.11F describes it, built by scapy.
UPDATE_80211F = scapy_bytes(
    Dot3(dst="ff:ff:ff:ff:ff:ff", src=STATION) / LLC(dsap=0, ssap=0, ctrl=0xAF) / b"\x81\x01\x00"
)
# The same frame as Linux cfg80211 sends it: SSAP with the response bit, padded.
UPDATE_LINUX = scapy_bytes(
    Dot3(dst="ff:ff:ff:ff:ff:ff", src=STATION, len=6)
    / LLC(dsap=0, ssap=1, ctrl=0xAF)
    / b"\x81\x01\x00"
    / bytes(40)
)
SNAP_PDU = scapy_bytes(LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800) / b"ip")
I_FORMAT_PDU = bytes([0x04, 0x04, 0x0A, 0x0C]) + b"data"


def test_update_matches_scapy() -> None:
    frame = parse_ethernet(UPDATE_80211F)
    pdu = parse_llc(frame.payload)
    reference = Ether(UPDATE_80211F)[LLC]
    assert pdu.dsap == reference.dsap
    assert pdu.ssap == reference.ssap
    assert pdu.control == reference.ctrl
    assert pdu.information == bytes(reference.payload)


def test_build_update_reproduces_scapy() -> None:
    assert build_layer2_update(Layer2Update(mac(STATION))) == UPDATE_80211F


def test_build_update_parsed_by_scapy() -> None:
    reference = Ether(build_layer2_update(Layer2Update(mac(STATION))))
    assert isinstance(reference, Dot3)
    assert reference.dst == "ff:ff:ff:ff:ff:ff"
    assert reference.src == STATION
    assert reference.len == 6
    assert reference[LLC].dsap == 0
    assert reference[LLC].ssap == 0
    assert reference[LLC].ctrl == 0xAF
    assert bytes(reference[LLC].payload) == b"\x81\x01\x00"


def test_parse_update() -> None:
    update = parse_layer2_update(parse_ethernet(UPDATE_80211F))
    assert update == Layer2Update(mac(STATION))


def test_parse_linux_update() -> None:
    update = parse_layer2_update(parse_ethernet(UPDATE_LINUX))
    assert update == Layer2Update(mac(STATION), response=True)


def test_parse_tagged_update() -> None:
    data = scapy_bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=STATION) / Dot1Q(vlan=30, type=6))
    data += UPDATE_80211F[14:]
    frame = parse_ethernet(data)
    assert frame.vlan_id == 30
    assert parse_layer2_update(frame).station == mac(STATION)


def test_tshark_reads_update(tmp_path) -> None:
    pcap = tmp_path / "llc.pcap"
    write_pcap(pcap, [UPDATE_80211F, UPDATE_LINUX])
    layers = run_tshark_json(pcap)
    for frame_layers, data in zip(layers, [UPDATE_80211F, UPDATE_LINUX], strict=True):
        llc = frame_layers["llc"]
        xid = frame_layers["basicxid"]
        update = parse_layer2_update(parse_ethernet(data))
        pdu = parse_llc(parse_ethernet(data).payload)
        assert int(llc["llc.dsap"], 16) == pdu.dsap
        assert int(llc["llc.ssap"], 16) == pdu.ssap
        assert int(llc["llc.control"], 16) == pdu.control
        assert int(xid["basicxid.llc.xid.format"], 16) == pdu.information[0]
        assert int(xid["basicxid.llc.xid.types"], 16) == pdu.information[1]
        assert int(xid["basicxid.llc.xid.wsize"]) == update.receive_window


@pytest.mark.parametrize(
    "frame",
    [
        EthernetFrame(mac("02:00:00:00:00:09"), mac(STATION), None, b"\x00\x00\xaf\x81\x01\x00"),
        EthernetFrame(BROADCAST, mac(STATION), 0x0800, b"\x00\x00\xaf\x81\x01\x00"),
        EthernetFrame(BROADCAST, mac(STATION), None, b"\x42\x42\xaf\x81\x01\x00"),
        EthernetFrame(BROADCAST, mac(STATION), None, b"\x00\x00\xe3\x81\x01\x00"),
        EthernetFrame(BROADCAST, mac(STATION), None, b"\x00\x00\xaf\x82\x01\x00"),
        EthernetFrame(BROADCAST, mac(STATION), None, b"\x00\x00\xaf\x81\x01"),
    ],
    ids=["unicast", "ethertype", "sap", "test-control", "format", "short-information"],
)
def test_not_an_update_rejected(frame: EthernetFrame) -> None:
    with pytest.raises(DecodeError):
        parse_layer2_update(frame)


def test_snap_matches_scapy() -> None:
    pdu = parse_llc(SNAP_PDU)
    reference = LLC(SNAP_PDU)
    assert pdu.dsap == 0xAA
    assert pdu.ssap == 0xAA
    assert pdu.control == 3
    assert pdu.information == bytes(reference.payload)


def test_two_byte_control() -> None:
    pdu = parse_llc(I_FORMAT_PDU)
    assert pdu.control == 0x0A0C
    assert pdu.information == b"data"
    assert build_llc(pdu) == I_FORMAT_PDU


@pytest.mark.parametrize("data", [UPDATE_80211F[14:], SNAP_PDU, I_FORMAT_PDU])
def test_truncated_rejected(data: bytes) -> None:
    minimum = 3 if data[2] & 3 == 3 else 4
    for prefix in prefixes(data[:minimum]):
        with pytest.raises(DecodeError):
            parse_llc(prefix)


def test_truncated_update_frames_rejected() -> None:
    for prefix in prefixes(UPDATE_80211F):
        frame = parse_or_decode_error(parse_ethernet, prefix)
        assert frame is None or parse_or_decode_error(parse_layer2_update, frame) is None


def test_all_zero_frame_rejected() -> None:
    with pytest.raises(DecodeError):
        parse_ethernet(bytes(60))


def test_all_zero_pdu_is_not_update() -> None:
    # Four zero bytes are a well-formed I-format PDU between the null SAPs.
    frame = EthernetFrame(BROADCAST, mac(STATION), None, bytes(46))
    assert parse_llc(frame.payload).control == 0
    with pytest.raises(DecodeError, match="not XID"):
        parse_layer2_update(frame)


def test_build_rejects_mismatched_control() -> None:
    with pytest.raises(ValueError, match="control"):
        build_llc(LlcPdu(0, 0, 0x01))


def test_xid_control_constant() -> None:
    assert XID_CONTROL == 0b10101111


pdus = st.one_of(
    st.builds(
        LlcPdu,
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0, 63).map(lambda n: n << 2 | 3),
        st.binary(max_size=40),
    ),
    st.builds(
        LlcPdu,
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0x100, 0xFFFF).filter(lambda c: (c >> 8) & 3 != 3),
        st.binary(max_size=40),
    ),
)
updates = st.builds(
    Layer2Update,
    station=st.binary(min_size=6, max_size=6)
    .map(lambda b: bytes([b[0] & 0xFE]) + b[1:])
    .filter(any),
    response=st.booleans(),
    receive_window=st.integers(0, 255),
)


@given(pdus)
def test_round_trip(pdu: LlcPdu) -> None:
    assert parse_llc(build_llc(pdu)) == pdu


@given(updates)
def test_update_round_trip(update: Layer2Update) -> None:
    assert parse_layer2_update(parse_ethernet(build_layer2_update(update))) == update


@given(st.binary(max_size=20))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    parse_or_decode_error(parse_llc, data)


@given(st.binary(max_size=20))
def test_random_frames_raise_only_decode_error(payload: bytes) -> None:
    frame = EthernetFrame(BROADCAST, mac(STATION), None, payload)
    parse_or_decode_error(parse_layer2_update, frame)
