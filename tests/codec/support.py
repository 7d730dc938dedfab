# -*- test-case-name: tests.codec -*-
"""
Helpers shared by the codec tests: scapy and tshark oracles and truncation
checks.
"""

__all__ = [
    "ip_to_int",
    "mac",
    "parse_or_decode_error",
    "prefixes",
    "run_tshark",
    "run_tshark_json",
    "scapy_bytes",
    "write_pcap",
]

import ipaddress
import json
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from roaming.errors import DecodeError


def mac(text: str) -> bytes:
    """Return the 6 bytes of a colon-separated MAC address."""
    return bytes.fromhex(text.replace(":", ""))


def ip_to_int(text: str) -> int:
    """Return an IPv4 address in dotted-quad notation as an C{int}."""
    return int(ipaddress.IPv4Address(text))


def scapy_bytes(packet: object) -> bytes:
    """Serialise a scapy packet."""
    from scapy.all import raw

    return raw(packet)


def prefixes(data: bytes) -> Iterator[bytes]:
    """Yield every proper prefix of C{data}, the empty one included."""
    for length in range(len(data)):
        yield data[:length]


def parse_or_decode_error(parse: Callable[[bytes], object], data: bytes) -> object | None:
    """
    Call C{parse(data)}; return its result, or C{None} when it raised
    L{DecodeError}.  Any other exception propagates and fails the test.
    """
    try:
        return parse(data)
    except DecodeError:
        return None


def run_tshark(
    pcap: Path, *fields: str, preferences: dict[str, str] | None = None
) -> list[list[str]]:
    """
    Run tshark on C{pcap} and return, per frame, the values of C{fields}
    (each value as tshark prints it with C{-T fields}, repeated values
    joined by commas).  C{preferences} are passed as C{-o name:value}.
    """
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    command = [tshark, "-r", str(pcap), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]
    for name, value in (preferences or {}).items():
        command += ["-o", f"{name}:{value}"]
    for name in fields:
        command += ["-e", name]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return [line.split("\t") for line in result.stdout.splitlines()]


def run_tshark_json(pcap: Path) -> list[dict]:
    """Run tshark on C{pcap} and return its C{-T json} layers per frame."""
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    result = subprocess.run(
        [tshark, "-r", str(pcap), "-T", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [frame["_source"]["layers"] for frame in json.loads(result.stdout)]


def write_pcap(path: Path, frames: list[bytes]) -> None:
    """Write C{frames} unchanged to a classic pcap file with Ethernet link type."""
    records = [struct.pack("<IHHIIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for index, frame in enumerate(frames):
        records.append(struct.pack("<IIII", index, 0, len(frame), len(frame)))
        records.append(frame)
    path.write_bytes(b"".join(records))
