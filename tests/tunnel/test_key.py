# -*- test-case-name: tests.tunnel.test_key -*-
"""
Tests for L{roaming.tunnel.key}: the bit positions of the key layout.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roaming.errors import DecodeError
from roaming.tunnel.key import MAX_VSC_ID, TunnelKey, pack_key, unpack_key


@pytest.mark.parametrize(
    ("vsc_id", "access_controlled", "key"),
    [
        (0, False, 0x0000_0000),
        (1, False, 0x0000_0001),
        (0x0012_3456, False, 0x0012_3456),
        (0, True, 0x8000_0000),
        (MAX_VSC_ID, True, 0x80FF_FFFF),
    ],
)
def test_layout_bits(vsc_id, access_controlled, key):
    """
    The VSC id is in bits 23-0 and the access-controlled flag in bit 31.
    """
    assert pack_key(vsc_id, access_controlled) == key
    assert unpack_key(key) == TunnelKey(vsc_id, access_controlled)


@pytest.mark.parametrize("vsc_id", [-1, MAX_VSC_ID + 1, 1 << 31])
def test_vsc_id_out_of_range(vsc_id):
    """
    A VSC id that does not fit 24 bits raises L{ValueError}.
    """
    with pytest.raises(ValueError, match="24-bit"):
        pack_key(vsc_id)


@pytest.mark.parametrize("bit", range(24, 31))
def test_reserved_bits_rejected(bit):
    """
    A received key with any of bits 30-24 set raises L{DecodeError}.
    """
    with pytest.raises(DecodeError, match="reserved bits"):
        unpack_key(pack_key(5, True) | (1 << bit))


@given(vsc_id=st.integers(0, MAX_VSC_ID), access_controlled=st.booleans())
def test_round_trip(vsc_id, access_controlled):
    """
    Unpacking a packed key returns its fields.
    """
    key = pack_key(vsc_id, access_controlled)

    assert 0 <= key <= 0xFFFF_FFFF
    assert unpack_key(key) == (vsc_id, access_controlled)
