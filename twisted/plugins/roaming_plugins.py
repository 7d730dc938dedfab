# -*- test-case-name: tests.daemons.test_services -*-
"""
twistd plugins for the roaming daemons: C{twistd roaming-sc} and
C{twistd roaming-ap}.

Each L{ServiceMaker} names its module as a string, so listing plugins does
not import the daemons or their dependencies.
"""

from twisted.application.service import ServiceMaker

__all__ = ["roaming_ap", "roaming_sc"]

roaming_sc = ServiceMaker(
    "roaming service controller",
    "roaming.tap.sc",
    "Run a roaming service controller (SC): bridge, GRE aggregation, discovery, "
    "client database and control servers.",
    "roaming-sc",
)

roaming_ap = ServiceMaker(
    "roaming access point",
    "roaming.tap.ap",
    "Run a roaming access point (AP): one bridge per VLAN, radio and uplink "
    "ports, a GRE tunnel and a control connection to its SC.",
    "roaming-ap",
)
