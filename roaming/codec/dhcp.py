# -*- test-case-name: tests.codec.test_dhcp -*-
"""
DHCP messages (RFC 2131) and their options (RFC 2132).

A message is the fixed BOOTP part (RFC 951), the magic cookie and a list of
options.  The bridge cares about three things in it: the message type
(option 53), the client address C{ciaddr} and the requested address
(option 50).  Addresses are C{int}.
"""

__all__ = [
    "CLIENT_PORT",
    "MAGIC_COOKIE",
    "SERVER_PORT",
    "BootpOperation",
    "DhcpMessage",
    "DhcpMessageType",
    "DhcpOption",
    "DhcpOptionCode",
    "build_dhcp",
    "parse_dhcp",
]

import struct
from dataclasses import dataclass
from enum import IntEnum

from roaming.errors import DecodeError

PROTOCOL = "dhcp"

SERVER_PORT = 67
CLIENT_PORT = 68

MAGIC_COOKIE = b"\x63\x82\x53\x63"
"""The four bytes 99.130.83.99 that start the options (RFC 2131 section 3)."""

_FIXED = struct.Struct("!BBBBIHHIIII16s64s128s")
_FIXED_LENGTH = _FIXED.size
_MIN_LENGTH = _FIXED_LENGTH + len(MAGIC_COOKIE)
_MAX_HARDWARE_LENGTH = 16
_MAX_OPTION_LENGTH = 255


class BootpOperation(IntEnum):
    """The C{op} field (RFC 951)."""

    REQUEST = 1
    REPLY = 2


class DhcpMessageType(IntEnum):
    """Values of option 53 (RFC 2132 section 9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class DhcpOptionCode(IntEnum):
    """Option codes that roaming reads (RFC 2132)."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    HOST_NAME = 12
    REQUESTED_ADDRESS = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_IDENTIFIER = 54
    PARAMETER_REQUEST_LIST = 55
    CLIENT_IDENTIFIER = 61
    END = 255


# Options whose length is fixed, checked on parse so that the properties
# below never meet a malformed value (RFC 2132 sections 9.1, 9.6 and 9.7).
_FIXED_OPTION_LENGTHS = {
    DhcpOptionCode.REQUESTED_ADDRESS: 4,
    DhcpOptionCode.MESSAGE_TYPE: 1,
    DhcpOptionCode.SERVER_IDENTIFIER: 4,
}


@dataclass(frozen=True, slots=True)
class DhcpOption:
    """One option in code-length-value form; PAD and END are never stored."""

    code: int
    data: bytes


@dataclass(frozen=True, slots=True)
class DhcpMessage:
    """A DHCP message: the BOOTP fields and the options in wire order."""

    op: int
    """L{BootpOperation} value."""
    xid: int
    """Transaction ID chosen by the client."""
    client_hardware_address: bytes
    """The first C{hlen} bytes of C{chaddr}: the client MAC on Ethernet."""
    options: tuple[DhcpOption, ...] = ()
    htype: int = 1
    """Hardware type, 1 for Ethernet (RFC 1700, "ARP Parameters")."""
    hops: int = 0
    secs: int = 0
    flags: int = 0
    """Bit 0x8000 is the broadcast flag (RFC 2131 section 2)."""
    ciaddr: int = 0
    """Client address, set only by a client that already has one."""
    yiaddr: int = 0
    siaddr: int = 0
    giaddr: int = 0
    sname: bytes = b""
    """Server host name with the trailing NUL bytes removed."""
    file: bytes = b""
    """Boot file name with the trailing NUL bytes removed."""

    def option(self, code: int) -> bytes | None:
        """
        Return the data of the first option with C{code}, or C{None}.
        """
        for option in self.options:
            if option.code == code:
                return option.data
        return None

    @property
    def message_type(self) -> int | None:
        """The L{DhcpMessageType} in option 53, or C{None} for plain BOOTP."""
        data = self.option(DhcpOptionCode.MESSAGE_TYPE)
        return None if data is None else data[0]

    @property
    def requested_address(self) -> int | None:
        """The address in option 50, or C{None} when absent."""
        data = self.option(DhcpOptionCode.REQUESTED_ADDRESS)
        return None if data is None else int.from_bytes(data, "big")


def parse_dhcp(message: bytes) -> DhcpMessage:
    """
    Parse a DHCP message, the payload of a UDP datagram to port 67 or 68.
    Bytes after the END option are padding and ignored.

    @raise DecodeError: the message is shorter than 240 bytes, C{op} is
        neither request nor reply, C{hlen} exceeds 16, the magic cookie is
        missing, an option runs past the end, the END option is missing, or
        option 50, 53 or 54 has the wrong length.
    """
    size = len(message)
    if size < _MIN_LENGTH:
        raise DecodeError(
            PROTOCOL, f"message of {size} bytes is shorter than the {_MIN_LENGTH}-byte minimum"
        )
    (
        op,
        htype,
        hlen,
        hops,
        xid,
        secs,
        flags,
        ciaddr,
        yiaddr,
        siaddr,
        giaddr,
        chaddr,
        sname,
        file,
    ) = _FIXED.unpack_from(message)
    if op not in (BootpOperation.REQUEST, BootpOperation.REPLY):
        raise DecodeError(PROTOCOL, f"op {op} is neither 1 (request) nor 2 (reply)")
    if hlen > _MAX_HARDWARE_LENGTH:
        raise DecodeError(PROTOCOL, f"hardware address length {hlen} exceeds 16")
    if message[_FIXED_LENGTH:_MIN_LENGTH] != MAGIC_COOKIE:
        raise DecodeError(
            PROTOCOL, "magic cookie 99.130.83.99 is missing; plain BOOTP is not decoded"
        )

    return DhcpMessage(
        op=op,
        xid=xid,
        client_hardware_address=chaddr[:hlen],
        options=_parse_options(message, _MIN_LENGTH),
        htype=htype,
        hops=hops,
        secs=secs,
        flags=flags,
        ciaddr=ciaddr,
        yiaddr=yiaddr,
        siaddr=siaddr,
        giaddr=giaddr,
        sname=sname.rstrip(b"\x00"),
        file=file.rstrip(b"\x00"),
    )


def _parse_options(message: bytes, offset: int) -> tuple[DhcpOption, ...]:
    # RFC 2132 section 2: PAD and END are single bytes, every other option
    # is code, length, data.  The options must end with END.
    options: list[DhcpOption] = []
    size = len(message)
    while offset < size:
        code = message[offset]
        if code == DhcpOptionCode.END:
            return tuple(options)
        if code == DhcpOptionCode.PAD:
            offset += 1
            continue
        if offset + 2 > size:
            raise DecodeError(PROTOCOL, f"option {code} at offset {offset} has no length byte")
        length = message[offset + 1]
        end = offset + 2 + length
        if end > size:
            raise DecodeError(
                PROTOCOL, f"option {code} of length {length} runs past the end of the message"
            )
        expected = _FIXED_OPTION_LENGTHS.get(code)
        if expected is not None and length != expected:
            raise DecodeError(PROTOCOL, f"option {code} has length {length}, expected {expected}")
        options.append(DhcpOption(code, message[offset + 2 : end]))
        offset = end
    raise DecodeError(PROTOCOL, "END option (255) is missing")


def build_dhcp(message: DhcpMessage) -> bytes:
    """
    Serialise C{message} and append the END option.  The message is not
    padded to the 300 bytes that some BOOTP relays expect.

    @raise ValueError: a field is out of range, a name is too long, an
        option is PAD or END, longer than 255 bytes, or option 50, 53 or 54
        has the wrong length.
    """
    if len(message.client_hardware_address) > _MAX_HARDWARE_LENGTH:
        raise ValueError(
            f"hardware address of {len(message.client_hardware_address)} bytes exceeds 16 bytes"
        )
    if len(message.sname) > 64 or len(message.file) > 128:
        raise ValueError("sname exceeds 64 bytes or file exceeds 128 bytes")
    try:
        fixed = _FIXED.pack(
            message.op,
            message.htype,
            len(message.client_hardware_address),
            message.hops,
            message.xid,
            message.secs,
            message.flags,
            message.ciaddr,
            message.yiaddr,
            message.siaddr,
            message.giaddr,
            message.client_hardware_address,
            message.sname,
            message.file,
        )
    except struct.error as error:
        raise ValueError(f"invalid DHCP field in {message!r}: {error}") from None

    parts = [fixed, MAGIC_COOKIE]
    for option in message.options:
        if option.code in (DhcpOptionCode.PAD, DhcpOptionCode.END) or not 0 <= option.code <= 255:
            raise ValueError(f"invalid option code {option.code}: expected 1 to 254")
        if len(option.data) > _MAX_OPTION_LENGTH:
            raise ValueError(
                f"option {option.code} of {len(option.data)} bytes exceeds 255; "
                "split it into several options (RFC 3396)"
            )
        expected = _FIXED_OPTION_LENGTHS.get(option.code)
        if expected is not None and len(option.data) != expected:
            raise ValueError(
                f"option {option.code} must be {expected} bytes, not {len(option.data)}"
            )
        parts.append(bytes((option.code, len(option.data))))
        parts.append(option.data)
    parts.append(bytes((DhcpOptionCode.END,)))
    return b"".join(parts)
