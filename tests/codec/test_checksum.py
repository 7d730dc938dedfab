# -*- test-case-name: tests.codec.test_checksum -*-
"""
Tests for L{roaming.codec._checksum}.
"""

from hypothesis import given
from hypothesis import strategies as st
from scapy.utils import checksum as scapy_checksum

from roaming.codec._checksum import internet_checksum, ipv4_pseudo_header


def test_rfc1071_example() -> None:
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2


def test_odd_length_padded() -> None:
    assert internet_checksum(b"\x01") == internet_checksum(b"\x01\x00")


def test_empty_data() -> None:
    assert internet_checksum(b"") == 0xFFFF


def test_checksum_over_itself_is_zero() -> None:
    data = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    checksum = internet_checksum(data)
    filled = data[:10] + checksum.to_bytes(2, "big") + data[12:]
    # scapy's checksum is an independent implementation of RFC 1071.
    assert checksum == scapy_checksum(data)
    assert internet_checksum(filled) == 0


def test_pseudo_header_layout() -> None:
    header = ipv4_pseudo_header(0x0A000001, 0x0A000002, 17, 300)
    assert header == bytes.fromhex("0a000001 0a000002 00 11 012c")


@given(st.binary(max_size=600))
def test_matches_scapy(data: bytes) -> None:
    assert internet_checksum(data) == scapy_checksum(data)
