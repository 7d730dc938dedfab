"""
Device ports: reactor-integrated file descriptors that move whole Ethernet
frames between Linux devices and a bridge core.

  - L{roaming.ports.tap}: TAP devices.
  - L{roaming.ports.packet}: existing interfaces through C{AF_PACKET}.
  - L{roaming.ports.gre}: GRE aggregation ports over IP protocol 47 or UDP.
  - L{roaming.ports.tunnels}: the static GRE tunnel table.
  - L{roaming.ports.dispatch}: binds a bridge core to its ports.
  - L{roaming.ports.forward}: a minimal forwarder for tests and benchmarks.

See docs/ports.md.
"""
