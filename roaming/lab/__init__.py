# -*- test-case-name: tests.lab -*-
"""
roaming-lab: a roaming network in network namespaces on one machine.

The lab builds two IP subnets joined by a router (L{roaming.lab.topology}),
runs the real SC and AP daemons in them (L{roaming.lab.daemons}) with an
emulated radio per AP (L{roaming.radio.EmulatedRadio}), gives each client
namespace an address by DHCP (L{roaming.lab.dhcp}), and roams the clients
between the APs while they probe a host (L{roaming.lab.probe}). It reports
the interruption and loss of each roam (L{roaming.lab.measure}) and checks
that each client kept its address, ARP, DHCP renewal and a TCP connection.
L{roaming.lab.runner} runs the steps and L{roaming.lab.cli} is the
C{roaming-lab} command. docs/lab.md describes the topology and the method.
"""

__all__: list[str] = []
