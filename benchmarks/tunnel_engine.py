"""
Measure the CPU cost per frame of the sans-IO tunnel engine: encapsulate and
decapsulate on one core, without sockets.

Run from the checkout: PYTHONPATH=. python benchmarks/tunnel_engine.py [--frames N]
Prints a Markdown table, one row per transport, option set and frame size,
with the median of several repeats because the machines are shared.
"""

import argparse
import platform
import statistics
import struct
import sys
import time

from roaming.tunnel import GreEndpoint, Transport, pack_key

__all__ = ["main"]

_CHUNK = 10_000
LOCAL = "192.0.2.1"
REMOTE = "192.0.2.2"
CASES = [
    ("raw IPv4, key", Transport.RAW_IPV4, {}),
    ("raw IPv4, key + sequence", Transport.RAW_IPV4, {"sequence": True}),
    (
        "raw IPv4, key + sequence + checksum",
        Transport.RAW_IPV4,
        {"sequence": True, "checksum": True},
    ),
    ("GRE-in-UDP, key", Transport.GRE_IN_UDP, {}),
]


def ipv4_udp_frame(size: int) -> bytes:
    """
    Build an untagged Ethernet frame of C{size} bytes carrying IPv4 (TOS
    0xB8, DF) and UDP, without scapy so that the benchmark needs nothing
    beyond roaming.
    """
    ethernet = bytes.fromhex("0200000000fe 020000000001 0800")
    ip = struct.pack(
        "!BBHHHBBHII", 0x45, 0xB8, size - 14, 0, 0x4000, 64, 17, 0, 0x0A010005, 0xCB007109
    )
    udp = struct.pack("!HHHH", 4000, 9, size - 34, 0)
    return ethernet + ip + udp + bytes(size - 42)


def measure(transport: Transport, options: dict, size: int, frames: int) -> tuple[float, float]:
    """
    Return the microseconds per frame of encapsulate and of decapsulate.
    """
    key = pack_key(12, access_controlled=True)
    local = GreEndpoint(LOCAL, transport=transport)
    remote = GreEndpoint(REMOTE, transport=transport)
    local.add_tunnel(7, REMOTE, key, **options)
    remote.add_tunnel(9, LOCAL, key, **options)
    frame = ipv4_udp_frame(size)
    encapsulate = local.encapsulate
    decapsulate = remote.decapsulate

    start = time.perf_counter()
    for _ in range(frames):
        outgoing = encapsulate(7, frame, 0.0)
    encapsulate_time = time.perf_counter() - start

    # Packets are made in chunks outside the timed loop, so that they keep
    # increasing sequence numbers without holding every packet in memory.
    decapsulate_time = 0.0
    for chunk_start in range(0, frames, _CHUNK):
        count = min(_CHUNK, frames - chunk_start)
        packets = [encapsulate(7, frame, 0.0).packets[0] for _ in range(count)]
        start = time.perf_counter()
        for packet in packets:
            result = decapsulate(LOCAL, packet, 0.0)
        decapsulate_time += time.perf_counter() - start

    if outgoing is None or result != (9, frame):
        raise SystemExit(f"round trip failed for {transport.value} {options}: {result!r}")
    return encapsulate_time / frames * 1e6, decapsulate_time / frames * 1e6


def main(argv: list[str] | None = None) -> None:
    """
    Run every case and print the table.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--frames", type=int, default=100_000, help="frames per repeat")
    parser.add_argument("--repeat", type=int, default=5, help="repeats per case")
    arguments = parser.parse_args(argv)

    print(f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print()
    print("| transport and options | frame bytes | encapsulate us/frame | decapsulate us/frame |")
    print("|---|---|---|---|")
    for label, transport, options in CASES:
        for size in (64, 1400):
            results = [
                measure(transport, options, size, arguments.frames) for _ in range(arguments.repeat)
            ]
            encapsulate_us = statistics.median(result[0] for result in results)
            decapsulate_us = statistics.median(result[1] for result in results)
            print(f"| {label} | {size} | {encapsulate_us:.2f} | {decapsulate_us:.2f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
