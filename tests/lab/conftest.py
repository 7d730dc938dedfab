"""
Shared checks for the lab tests that need root and network namespaces.
"""

import os
import shutil

import pytest


def lab_skip_reason(programs=("ip", "dnsmasq", "udhcpc", "ping", "ethtool")):
    """
    Return why namespace tests cannot run here, or L{None} if they can.
    """
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    for program in programs:
        if shutil.which(program) is None and not os.path.exists(f"/usr/sbin/{program}"):
            return f"needs the {program} program"
    return None


@pytest.fixture(scope="session")
def netns_ready():
    reason = lab_skip_reason()
    if reason is not None:
        pytest.skip(reason)
