# -*- test-case-name: tests.ports.test_packet -*-
"""
Packet-socket ports: whole Ethernet frames in and out of an existing
interface (an access point's wired uplink) through an C{AF_PACKET} socket.

The socket is bound to one interface with C{ETH_P_ALL} and joins
promiscuous mode, so it receives every frame on the wire, like a bridge port.
See packet(7).
"""

import socket
import struct

from roaming.ports.socketport import SocketPort

__all__ = [
    "ETH_P_ALL",
    "PACKET_AUXDATA",
    "PACKET_OUTGOING",
    "SOL_PACKET",
    "TP_STATUS_VLAN_TPID_VALID",
    "TP_STATUS_VLAN_VALID",
    "PacketSocketPort",
    "restore_vlan_tag",
]

# Linux UAPI constants (linux/if_ether.h, linux/if_packet.h); the socket
# module of Python 3.11 does not export them all.
ETH_P_ALL = 0x0003
ETH_P_8021Q = 0x8100
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40

# struct packet_mreq and struct tpacket_auxdata are kernel ABI structures in
# host byte order, so these use "=" (native order, standard sizes), not "!".
_PACKET_MREQ = struct.Struct("=iHH8s")
_TPACKET_AUXDATA = struct.Struct("=IIIHHHH")
_VLAN_TAG = struct.Struct("!HH")

_ANCILLARY_SIZE = socket.CMSG_SPACE(_TPACKET_AUXDATA.size)


def restore_vlan_tag(frame: bytes, ancillary: list) -> bytes:
    """
    Put back the 802.1Q tag that the kernel removed from a received frame.

    The receive path strips the outermost VLAN tag into packet metadata
    before packet sockets see the frame, and reports it in the
    C{PACKET_AUXDATA} control message (C{tp_vlan_tci}, valid when
    C{TP_STATUS_VLAN_VALID} is set; C{tp_vlan_tpid}, valid when
    C{TP_STATUS_VLAN_TPID_VALID} is set, else 0x8100).

    @param ancillary: the control messages from C{recvmsg}.
    @return: C{frame} with the tag inserted after the MAC addresses, or
        C{frame} itself if no tag was stripped.
    """
    for level, kind, data in ancillary:
        if level != SOL_PACKET or kind != PACKET_AUXDATA:
            continue
        if len(data) < _TPACKET_AUXDATA.size:
            return frame
        status, _, _, _, _, tci, tpid = _TPACKET_AUXDATA.unpack_from(data)
        # A TCI of 0 with VLAN_VALID set is a priority-tagged frame (VLAN 0),
        # which still needs its tag for the 802.1p bits.
        if not status & TP_STATUS_VLAN_VALID:
            return frame
        if not status & TP_STATUS_VLAN_TPID_VALID:
            tpid = ETH_P_8021Q
        return frame[:12] + _VLAN_TAG.pack(tpid, tci) + frame[12:]
    return frame


class PacketSocketPort(SocketPort):
    """
    A bridge port on an existing interface, through an C{AF_PACKET} socket.

    Frames the host itself sends on the interface (C{PACKET_OUTGOING},
    including the ones this port sends) are dropped without counting, since
    they are not traffic from the wire.  VLAN tags stripped by the kernel are
    restored with L{restore_vlan_tag}.
    """

    kind = "packet"

    def __init__(
        self,
        interface: str,
        *,
        max_frame_size: int = 9216,
        promiscuous: bool = True,
        budget: int = 64,
        reactor=None,
        system=None,
    ) -> None:
        """
        @param interface: name of an existing interface.
        @param max_frame_size: receive buffer size; longer frames are
            truncated by the kernel.
        @param promiscuous: join promiscuous mode, so frames for other MAC
            addresses arrive too; a bridge port needs it.
        """
        super().__init__(budget=budget, reactor=reactor, system=system)
        self.interface = interface
        self.max_frame_size = max_frame_size
        self.promiscuous = promiscuous

    @property
    def name(self) -> str:
        return self.interface

    def _open_socket(self):
        system = self._system
        index = system.if_nametoindex(self.interface)
        sock = system.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.setblocking(False)
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            if self.promiscuous:
                membership = _PACKET_MREQ.pack(index, PACKET_MR_PROMISC, 0, b"")
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, membership)
            sock.bind((self.interface, ETH_P_ALL))
        except OSError:
            sock.close()
            raise
        return sock

    def _receive_one(self):
        frame, ancillary, _, address = self._socket.recvmsg(self.max_frame_size, _ANCILLARY_SIZE)
        # address is (ifname, protocol, pkttype, hatype, hwaddr); see packet(7).
        if address[2] == PACKET_OUTGOING:
            return None
        return None, restore_vlan_tag(frame, ancillary)

    def send_frame(self, frame: bytes, agg_id: int | None = None) -> None:
        """
        Send one frame out of the interface, unchanged.

        @param agg_id: ignored, a packet-socket port has no aggregation
            members.
        """
        try:
            self._socket.send(frame)
        except OSError as e:
            self._count_send_error(e)
            return
        self.counters.tx_frames += 1
        self.counters.tx_bytes += len(frame)
