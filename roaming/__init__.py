"""
roaming: keep Wi-Fi clients' IP addresses and sessions while they roam
between access points in different IP subnets.

The package is layered: wire codecs (L{roaming.codec}), sans-IO cores
(L{roaming.bridge}, L{roaming.tunnel}, L{roaming.control}), Twisted adapters
(L{roaming.ports}, the AMP protocols) and the daemons (L{roaming.tap}).
See docs/architecture.md.
"""

__version__ = "0.1.0.dev0"
