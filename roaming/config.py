# -*- test-case-name: tests.daemons.test_config -*-
"""
Configuration files of the roaming daemons.

C{roaming-sc} and C{roaming-ap} each read one TOML file (docs/configuration.md
lists every key). L{load} parses it with L{tomllib} and checks the whole file
before returning frozen attrs objects, so a daemon never starts half
configured. Every problem found is collected into one L{ConfigError} whose
lines name the file, the dotted key and the reason.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

from roaming.errors import RoamingError

__all__ = [
    "DEFAULT_CONTROL_PORT",
    "DEFAULT_MAX_FRAME_SIZE",
    "MAX_FRAME_SIZE",
    "MIN_CONTROL_TIMER",
    "MIN_FRAME_SIZE",
    "MIN_GRE_KEEPALIVE",
    "MIN_RECONNECT",
    "ROLES",
    "SQLITE_HEADER",
    "BridgeConfig",
    "Config",
    "ConfigError",
    "ControlConfig",
    "DatabaseConfig",
    "GREConfig",
    "LANPortConfig",
    "MetricsConfig",
    "NodeConfig",
    "Problem",
    "RadioConfig",
    "RoamctlConfig",
    "SubnetConfig",
    "TLSConfig",
    "VSCConfig",
    "check_files",
    "load",
    "parse",
]

ROLES = ("sc", "ap")
# The default of roaming.control.service.CONTROL_PORT, so the two agree.
DEFAULT_CONTROL_PORT = 7443
# IANA port for GRE-in-UDP (RFC 8086 section 3).
DEFAULT_GRE_UDP_PORT = 4754
# Shortest control timers (seconds): the reactor runs timers late by
# milliseconds under load, so a shorter keepalive or handshake timer makes
# connections flap.
MIN_CONTROL_TIMER = 0.1
MIN_RECONNECT = 0.01
MIN_GRE_KEEPALIVE = 0.01
# Linux IFNAMSIZ is 16 bytes including the terminating NUL.
MAX_INTERFACE_NAME = 15
# Bounds of [bridge] max_frame_size, in bytes without FCS. The smallest is
# the 64-byte minimum Ethernet frame of IEEE 802.3 less its FCS, the least
# the bridge core accepts. The largest is the read size of the TAP and
# packet-socket ports (roaming.ports), so a longer frame never reaches the
# bridge whole.
MIN_FRAME_SIZE = 60
MAX_FRAME_SIZE = 9216
# A 1500-byte MTU plus an Ethernet header (14 bytes) and two 802.1Q tags
# (4 bytes each).
DEFAULT_MAX_FRAME_SIZE = 1522

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_INTERFACE_NAME = re.compile(r"[^\s/:]{1,15}")


@attrs.frozen
class Problem:
    """
    One invalid, missing or unknown key in a configuration file.
    """

    path: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.key}: {self.reason}"


class ConfigError(RoamingError):
    """
    A configuration file cannot be used. The message has one line per
    L{Problem}; C{problems} keeps them for callers that need the keys.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@attrs.frozen
class NodeConfig:
    """
    Identity of the node and the address carried by its own TAP interface.
    """

    name: str
    address: ipaddress.IPv4Address
    prefix: int
    gateway: ipaddress.IPv4Address | None = None
    interface: str = "rmbr0"

    @property
    def network(self) -> ipaddress.IPv4Network:
        """
        Subnet of C{address}.
        """
        return ipaddress.IPv4Network((self.address, self.prefix), strict=False)

    @property
    def interface_address(self) -> ipaddress.IPv4Interface:
        """
        C{address/prefix} as one interface address.
        """
        return ipaddress.IPv4Interface((self.address, self.prefix))


@attrs.frozen
class TLSConfig:
    """
    PEM files for mutual TLS, as absolute paths.
    """

    ca: Path
    certificate: Path
    key: Path


@attrs.frozen
class ControlConfig:
    """
    Control connection settings. Durations are in seconds.
    """

    port: int = DEFAULT_CONTROL_PORT
    primary: ipaddress.IPv4Address | None = None
    controller: ipaddress.IPv4Address | None = None
    keepalive_interval: float = 1.0
    keepalive_misses: int = 3
    handshake_timeout: float = 5.0
    reconnect_initial: float = 0.1
    reconnect_max: float = 10.0


@attrs.frozen
class SubnetConfig:
    """
    One subnet served by the node, on VLAN C{vlan} (0 is untagged).
    """

    network: ipaddress.IPv4Network
    vlan: int = 0


@attrs.frozen
class VSCConfig:
    """
    A virtual service community (one SSID) offered by an AP.
    """

    id: int
    name: str
    ssid: str
    vlan: int
    interface: str
    access_controlled: bool = False
    l3_mobility: bool = True


@attrs.frozen
class DatabaseConfig:
    """
    Client database of an SC: an SQLite file or C{":memory:"}.
    """

    path: str
    max_clients: int = 100_000


@attrs.frozen
class BridgeConfig:
    """
    Bounds and timers applied to every bridge instance of the node.
    """

    aging_time: float = 300.0
    max_entries: int = 8192
    max_l3_entries: int = 1024
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE


@attrs.frozen
class LANPortConfig:
    """
    The wired uplink: an AF_PACKET socket (C{"packet"}) or a TAP (C{"tap"}).
    """

    interface: str
    kind: str = "packet"

    def interface_for_vlan(self, vlan: int) -> str:
        """
        Name the uplink interface of the bridge for C{vlan}.
        """
        if vlan == 0:
            return self.interface
        return f"{self.interface}.{vlan}"


@attrs.frozen
class RadioConfig:
    """
    The wireless side of an AP.
    """

    kind: str
    interface: str
    control: Path


@attrs.frozen
class GREConfig:
    """
    GRE tunnel settings shared by every tunnel of the node.
    """

    transport: str = "ip"
    udp_port: int = DEFAULT_GRE_UDP_PORT
    mtu: int = 1500
    keepalive_interval: float = 1.0
    keepalive_misses: int = 3
    sequence: bool = False


@attrs.frozen
class MetricsConfig:
    """
    The Prometheus endpoint, or C{None} host and port when disabled.
    """

    host: str | None = None
    port: int | None = None

    @property
    def enabled(self) -> bool:
        """
        Whether the endpoint should be served.
        """
        return self.port is not None


@attrs.frozen
class RoamctlConfig:
    """
    The local UNIX socket served to roamctl.
    """

    socket: Path


@attrs.frozen
class Config:
    """
    A complete, checked configuration of one daemon.

    C{subnets} is never empty: when the file has no C{[[subnet]]}, it is the
    node's own subnet on VLAN 0. C{vscs} and C{radio} are empty or C{None}
    for an SC, and C{database} is C{None} for an AP.
    """

    role: str
    path: Path
    node: NodeConfig
    tls: TLSConfig
    control: ControlConfig
    subnets: tuple[SubnetConfig, ...]
    bridge: BridgeConfig
    lan: LANPortConfig
    gre: GREConfig
    metrics: MetricsConfig
    roamctl: RoamctlConfig
    vscs: tuple[VSCConfig, ...] = ()
    database: DatabaseConfig | None = None
    radio: RadioConfig | None = None

    @property
    def vlans(self) -> tuple[int, ...]:
        """
        VLANs that get a bridge instance, sorted: every VLAN used by a VSC
        or a subnet, and always VLAN 0, which carries the node's address.
        """
        vlans = {0}
        vlans.update(subnet.vlan for subnet in self.subnets)
        vlans.update(vsc.vlan for vsc in self.vscs)
        return tuple(sorted(vlans))

    def subnets_on_vlan(self, vlan: int) -> tuple[ipaddress.IPv4Network, ...]:
        """
        Return the subnets configured on C{vlan}.
        """
        return tuple(subnet.network for subnet in self.subnets if subnet.vlan == vlan)


_REQUIRED = object()


class _Table:
    """
    Reads typed values from one TOML table, records each problem, and
    reports the keys left unread as unknown.
    """

    def __init__(self, reader: _Reader, prefix: str, table: dict[str, Any]) -> None:
        self._reader = reader
        self._prefix = prefix
        self._table = table
        self._read: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self._prefix}.{key}" if self._prefix else key

    def problem(self, key: str, reason: str) -> None:
        """
        Record a problem about C{key} of this table.
        """
        self._reader.problem(self._key(key), reason)

    def has(self, key: str) -> bool:
        """
        Return whether the table sets C{key}.
        """
        return key in self._table

    def _get(
        self,
        key: str,
        default: Any,
        type_name: str,
        accept: Callable[[Any], bool],
    ) -> Any:
        self._read.add(key)
        if key not in self._table:
            if default is _REQUIRED:
                self.problem(key, "missing required key")
                return None
            return default
        value = self._table[key]
        if not accept(value):
            self.problem(key, f"expected {type_name}, got {_describe(value)}")
            return None
        return value

    def string(self, key: str, default: Any = _REQUIRED) -> str | None:
        """
        Read a string.
        """
        return self._get(key, default, "a string", lambda value: isinstance(value, str))

    def boolean(self, key: str, default: Any = _REQUIRED) -> bool | None:
        """
        Read a boolean.
        """
        return self._get(key, default, "a boolean", lambda value: isinstance(value, bool))

    def integer(
        self, key: str, minimum: int, maximum: int | None = None, default: Any = _REQUIRED
    ) -> int | None:
        """
        Read an integer within C{minimum..maximum} (no upper bound if C{None}).
        """
        value = self._get(key, default, "an integer", _is_integer)
        if value is None or value is default:
            return value
        if value < minimum or (maximum is not None and value > maximum):
            if maximum is None:
                bound = f"an integer >= {minimum}"
            else:
                bound = f"an integer between {minimum} and {maximum}"
            self.problem(key, f"invalid value {value}: expected {bound}")
            return None
        return value

    def duration(
        self, key: str, default: Any = _REQUIRED, minimum: float | None = None
    ) -> float | None:
        """
        Read a positive, finite number of seconds, at least C{minimum} if
        given.
        """
        value = self._get(key, default, "a number of seconds", _is_number)
        if value is None or value is default:
            return value
        if not math.isfinite(value) or value <= 0:
            self.problem(key, f"invalid value {value}: expected a number of seconds > 0")
            return None
        if minimum is not None and value < minimum:
            self.problem(
                key,
                f"invalid value {value}: expected at least {minimum} s, because a shorter "
                f"timer fires on ordinary scheduling delays",
            )
            return None
        return float(value)

    def choice(self, key: str, choices: tuple[str, ...], default: Any = _REQUIRED) -> str | None:
        """
        Read a string that must be one of C{choices}.
        """
        value = self.string(key, default)
        if value is None or value is default:
            return value
        if value not in choices:
            expected = " or ".join(repr(choice) for choice in choices)
            self.problem(key, f"invalid value {value!r}: expected {expected}")
            return None
        return value

    def address(self, key: str, default: Any = _REQUIRED) -> ipaddress.IPv4Address | None:
        """
        Read an IPv4 unicast address in dotted-quad form.
        """
        value = self.string(key, default)
        if value is None or value is default:
            return value
        try:
            address = ipaddress.IPv4Address(value)
        except ValueError:
            self.problem(key, f"invalid IPv4 address {value!r}")
            return None
        kind = _non_unicast_kind(address)
        if kind is not None:
            self.problem(key, f"invalid address {value!r}: {kind}, expected a unicast address")
            return None
        return address

    def network(self, key: str) -> ipaddress.IPv4Network | None:
        """
        Read an IPv4 network such as C{"10.1.0.0/24"} with no host bits set.
        """
        value = self.string(key)
        if value is None:
            return None
        if "/" not in value:
            self.problem(key, f"invalid network {value!r}: expected address/prefix")
            return None
        try:
            return ipaddress.IPv4Network(value)
        except ValueError as error:
            self.problem(key, f"invalid network {value!r}: {error}")
            return None

    def interface(self, key: str, default: Any = _REQUIRED) -> str | None:
        """
        Read a Linux network interface name.
        """
        value = self.string(key, default)
        if value is None or value is default:
            return value
        if not _INTERFACE_NAME.fullmatch(value):
            self.problem(
                key,
                f"invalid interface name {value!r}: expected 1 to {MAX_INTERFACE_NAME} "
                f"characters without spaces, '/' or ':'",
            )
            return None
        return value

    def path(self, key: str, default: Any = _REQUIRED) -> Path | None:
        """
        Read a file path, relative paths being taken from the file's directory.
        """
        value = self.string(key, default)
        if value is None:
            return None
        if value == "":
            self.problem(key, "invalid value '': expected a file path")
            return None
        return self._reader.directory / value

    def reject_unless(self, key: str, role: str) -> None:
        """
        Record C{key} as invalid unless the daemon is C{role}.
        """
        self._read.add(key)
        if self._reader.role != role and key in self._table:
            self.problem(key, f"key is only valid for roaming-{role}")

    def finish(self) -> None:
        """
        Report every key of the table that was not read.
        """
        for key in self._table:
            if key not in self._read:
                self.problem(key, "unknown key")


class _Reader:
    """
    Walks a parsed TOML document for one role, collecting problems.
    """

    def __init__(self, path: Path, role: str, document: dict[str, Any]) -> None:
        self.path = path
        self.directory = path.parent
        self.role = role
        self.document = document
        self.problems: list[Problem] = []
        self._sections: set[str] = set()

    def problem(self, key: str, reason: str) -> None:
        """
        Record a problem about the dotted C{key}.
        """
        self.problems.append(Problem(str(self.path), key, reason))

    def section(self, name: str, required: bool = False, roles: tuple[str, ...] = ROLES) -> _Table:
        """
        Open table C{name} (dotted for nested tables), reporting it as missing,
        of the wrong type, or invalid for this daemon.
        """
        self._sections.add(name)
        value: Any = self.document
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            if required and self.role in roles:
                self.problem(name, "missing required section")
            return _Table(self, name, {})
        if not isinstance(value, dict):
            self.problem(name, f"expected a table, got {_describe(value)}")
            return _Table(self, name, {})
        if self.role not in roles:
            self.problem(name, f"section is only valid for roaming-{roles[0]}")
            return _Table(self, name, {})
        return _Table(self, name, value)

    def array(self, name: str, roles: tuple[str, ...] = ROLES) -> list[_Table]:
        """
        Open the array of tables C{name}; each table is keyed C{name[i]}.
        """
        self._sections.add(name)
        value = self.document.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.problem(name, f"expected an array of tables ([[{name}]]), got {_describe(value)}")
            return []
        if self.role not in roles:
            self.problem(name, f"section is only valid for roaming-{roles[0]}")
            return []
        return [_Table(self, f"{name}[{index}]", item) for index, item in enumerate(value)]

    def finish(self) -> None:
        """
        Report top-level sections that nothing read.
        """
        for name, value in self.document.items():
            if name == "ports" and isinstance(value, dict):
                for sub in value:
                    if f"ports.{sub}" not in self._sections:
                        self.problem(f"ports.{sub}", "unknown section")
            elif name not in self._sections and name != "ports":
                self.problem(name, "unknown section")
        if "ports" in self.document and not isinstance(self.document["ports"], dict):
            self.problem("ports", f"expected a table, got {_describe(self.document['ports'])}")


def _non_unicast_kind(address: ipaddress.IPv4Address) -> str | None:
    # RFC 1122 section 3.2.1.3 forbids these as a host's address.
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved or broadcast address"
    return None


def _is_integer(value: Any) -> bool:
    # TOML booleans are Python bools, which are ints; they are not integers here.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    kinds = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    kind = kinds.get(type(value), type(value).__name__)
    if isinstance(value, list | dict):
        return kind
    return f"{kind} ({value!r})"


def _read_node(reader: _Reader) -> NodeConfig | None:
    table = reader.section("node", required=True)
    name = table.string("name")
    if name is not None and not _NAME.fullmatch(name):
        table.problem(
            "name", f"invalid name {name!r}: expected 1 to 64 characters from A-Z a-z 0-9 . _ -"
        )
        name = None
    address = table.address("address")
    prefix = table.integer("prefix", 1, 32)
    gateway = table.address("gateway", None)
    interface = table.interface("interface", "rmbr0")
    table.finish()
    if None in (name, address, prefix, interface):
        return None
    node = NodeConfig(name, address, prefix, gateway, interface)
    if prefix <= 30 and address in (node.network.network_address, node.network.broadcast_address):
        table.problem(
            "address",
            f"invalid value {str(address)!r}: the network or broadcast address of "
            f"{node.network}; choose a host address",
        )
        return None
    if gateway is not None and (gateway not in node.network or gateway == address):
        table.problem(
            "gateway",
            f"invalid value {str(gateway)!r}: expected another address inside {node.network}",
        )
        return None
    return node


def _read_tls(reader: _Reader) -> TLSConfig | None:
    table = reader.section("tls", required=True)
    ca = table.path("ca")
    certificate = table.path("certificate")
    key = table.path("key")
    table.finish()
    if None in (ca, certificate, key):
        return None
    return TLSConfig(ca, certificate, key)


def _read_control(reader: _Reader, node: NodeConfig | None) -> ControlConfig | None:
    table = reader.section("control", required=True)
    port = table.integer("port", 1, 65535, DEFAULT_CONTROL_PORT)
    primary = controller = None
    if reader.role == "sc":
        primary = table.address("primary")
    else:
        controller = table.address("controller")
        if controller is not None and node is not None and controller == node.address:
            table.problem("controller", "invalid value: an AP cannot be its own controller")
            controller = None
    interval = table.duration("keepalive_interval", 1.0, MIN_CONTROL_TIMER)
    misses = table.integer("keepalive_misses", 1, 100, 3)
    handshake = table.duration("handshake_timeout", 5.0, MIN_CONTROL_TIMER)
    initial = table.duration("reconnect_initial", 0.1, MIN_RECONNECT)
    maximum = table.duration("reconnect_max", 10.0, MIN_RECONNECT)
    table.reject_unless("primary", "sc")
    table.reject_unless("controller", "ap")
    table.finish()
    if initial is not None and maximum is not None and maximum < initial:
        table.problem(
            "reconnect_max",
            f"invalid value {maximum}: expected at least reconnect_initial ({initial})",
        )
        return None
    values = (port, interval, misses, handshake, initial, maximum)
    if None in values or (primary is None and controller is None):
        return None
    return ControlConfig(port, primary, controller, interval, misses, handshake, initial, maximum)


def _read_subnets(reader: _Reader, node: NodeConfig | None) -> tuple[SubnetConfig, ...] | None:
    subnets: list[SubnetConfig] = []
    failed = False
    for table in reader.array("subnet"):
        network = table.network("network")
        vlan = 0
        if reader.role == "ap":
            vlan = table.integer("vlan", 0, 4094, 0)
        else:
            table.reject_unless("vlan", "ap")
        table.finish()
        if network is not None and network.prefixlen == 0:
            table.problem(
                "network",
                f"invalid network {network}: a subnet needs a prefix length of 1 to 32",
            )
            network = None
        if network is None or vlan is None:
            failed = True
            continue
        for index, other in enumerate(subnets):
            if network.overlaps(other.network):
                table.problem(
                    "network", f"subnet {network} overlaps subnet[{index}] ({other.network})"
                )
                failed = True
        subnets.append(SubnetConfig(network, vlan))
    if failed:
        return None
    if not subnets and node is not None:
        subnets.append(SubnetConfig(node.network, 0))
    return tuple(subnets)


def _read_vscs(reader: _Reader, radio_interface: str | None) -> tuple[VSCConfig, ...] | None:
    tables = reader.array("vsc", roles=("ap",))
    if reader.role == "ap" and not tables and reader.document.get("vsc", []) == []:
        reader.problem("vsc", "missing required section: an AP needs at least one [[vsc]]")
        return None
    vscs: list[VSCConfig] = []
    seen: dict[int, int] = {}
    failed = False
    for index, table in enumerate(tables):
        vsc_id = table.integer("id", 1, 255)
        name = table.string("name")
        ssid = table.string("ssid", name)
        vlan = table.integer("vlan", 0, 4094, 0)
        interface = table.interface("interface", radio_interface)
        access_controlled = table.boolean("access_controlled", False)
        l3_mobility = table.boolean("l3_mobility", True)
        table.finish()
        if ssid is not None and not 1 <= len(ssid.encode()) <= 32:
            table.problem("ssid", f"invalid SSID {ssid!r}: expected 1 to 32 bytes")
            ssid = None
        if vsc_id is not None and vsc_id in seen:
            table.problem("id", f"duplicate VSC id {vsc_id}: already used by vsc[{seen[vsc_id]}]")
            vsc_id = None
        if vsc_id is not None:
            seen[vsc_id] = index
        values = (vsc_id, name, ssid, vlan, interface, access_controlled, l3_mobility)
        if None in values:
            failed = True
            continue
        vscs.append(VSCConfig(vsc_id, name, ssid, vlan, interface, access_controlled, l3_mobility))
    return None if failed else tuple(vscs)


def _read_database(reader: _Reader) -> DatabaseConfig | None:
    table = reader.section("database", required=True, roles=("sc",))
    if reader.role != "sc":
        return None
    raw = table.string("path")
    max_clients = table.integer("max_clients", 1, None, 100_000)
    table.finish()
    if raw is None or max_clients is None:
        return None
    if raw == "":
        table.problem("path", "invalid value '': expected a file path or ':memory:'")
        return None
    path = raw if raw == ":memory:" else str(reader.directory / raw)
    return DatabaseConfig(path, max_clients)


def _read_bridge(reader: _Reader) -> BridgeConfig | None:
    table = reader.section("bridge")
    aging = table.duration("aging_time", 300.0, 1.0)
    max_entries = table.integer("max_entries", 16, None, 8192)
    max_l3 = table.integer("max_l3_entries", 1, None, 1024)
    max_frame = table.integer(
        "max_frame_size", MIN_FRAME_SIZE, MAX_FRAME_SIZE, DEFAULT_MAX_FRAME_SIZE
    )
    table.finish()
    if None in (aging, max_entries, max_l3, max_frame):
        return None
    return BridgeConfig(aging, max_entries, max_l3, max_frame)


def _read_lan(reader: _Reader) -> LANPortConfig | None:
    table = reader.section("ports.lan", required=True)
    interface = table.interface("interface")
    kind = table.choice("kind", ("packet", "tap"), "packet")
    table.finish()
    if interface is None or kind is None:
        return None
    return LANPortConfig(interface, kind)


def _read_radio(reader: _Reader) -> tuple[RadioConfig | None, str | None]:
    table = reader.section("ports.radio", required=True, roles=("ap",))
    if reader.role != "ap":
        return None, None
    kind = table.choice("kind", ("hostapd", "emulated"))
    interface = table.interface("interface")
    control = table.path("control", "/var/run/hostapd" if kind == "hostapd" else _REQUIRED)
    table.finish()
    if None in (kind, interface, control):
        return None, interface
    return RadioConfig(kind, interface, control), interface


def _read_gre(reader: _Reader) -> GREConfig | None:
    table = reader.section("gre")
    transport = table.choice("transport", ("ip", "udp"), "ip")
    # SC-to-SC tunnels use udp_port + 1, which must be a port too.
    udp_port = table.integer("udp_port", 1, 65534, DEFAULT_GRE_UDP_PORT)
    mtu = table.integer("mtu", 576, 9000, 1500)
    interval = table.duration("keepalive_interval", 1.0, MIN_GRE_KEEPALIVE)
    misses = table.integer("keepalive_misses", 1, 100, 3)
    sequence = table.boolean("sequence", False)
    table.finish()
    values = (transport, udp_port, mtu, interval, misses, sequence)
    if None in values:
        return None
    return GREConfig(*values)


def _read_metrics(reader: _Reader) -> MetricsConfig | None:
    table = reader.section("metrics")
    listen = table.string("listen", "")
    table.finish()
    if listen is None:
        return None
    if listen == "":
        return MetricsConfig()
    host, separator, port_text = listen.rpartition(":")
    reason = None
    if not separator or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        reason = "expected host:port with a port between 1 and 65535"
    else:
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            reason = "expected an IPv4 address before the port"
    if reason is not None:
        table.problem("listen", f"invalid value {listen!r}: {reason}")
        return None
    return MetricsConfig(host, int(port_text))


def _read_roamctl(reader: _Reader, node: NodeConfig | None) -> RoamctlConfig | None:
    table = reader.section("roamctl")
    name = node.name if node is not None else "roaming"
    socket = table.path("socket", f"/run/roaming/{name}.sock")
    table.finish()
    if socket is None:
        return None
    # sun_path is 108 bytes including the terminating NUL on Linux.
    if len(os.fsencode(socket)) > 107:
        table.problem("socket", f"invalid path {str(socket)!r}: longer than 107 bytes")
        return None
    return RoamctlConfig(socket)


def _check_interfaces(
    reader: _Reader,
    node: NodeConfig | None,
    lan: LANPortConfig | None,
    radio: RadioConfig | None,
    vscs: tuple[VSCConfig, ...] | None,
) -> None:
    # The node's own TAP interface is created by the daemon, so it cannot
    # be an interface that carries a port.
    if node is None:
        return
    taken = {}
    if lan is not None:
        taken[lan.interface] = "ports.lan.interface"
    if radio is not None:
        taken.setdefault(radio.interface, "ports.radio.interface")
    for index, vsc in enumerate(vscs or ()):
        taken.setdefault(vsc.interface, f"vsc[{index}].interface")
        if lan is not None and vsc.vlan:
            taken.setdefault(lan.interface_for_vlan(vsc.vlan), "ports.lan.interface")
    other = taken.get(node.interface)
    if other is not None:
        reader.problem(
            "node.interface",
            f"invalid value {node.interface!r}: {other} uses it too; the daemon creates "
            f"node.interface as its own TAP, so give it an unused name such as 'rmbr0'",
        )


def _check_metrics_port(
    reader: _Reader,
    role: str,
    node: NodeConfig | None,
    control: ControlConfig | None,
    metrics: MetricsConfig | None,
) -> None:
    # An SC listens for control connections on node.address.
    if role != "sc" or None in (node, control, metrics) or not metrics.enabled:
        return
    if metrics.port != control.port:
        return
    if metrics.host in ("0.0.0.0", str(node.address)):
        reader.problem(
            "metrics.listen",
            f"invalid value '{metrics.host}:{metrics.port}': control.port {control.port} "
            f"listens on {node.address} already; choose another port",
        )


def parse(text: str, role: str, path: Path | str = "<string>") -> Config:
    """
    Parse and check the configuration C{text} of daemon C{role} (C{"sc"} or
    C{"ap"}). C{path} names the file in messages and anchors relative paths.

    @raise ConfigError: listing every problem found.
    """
    if role not in ROLES:
        raise ValueError(f"invalid role {role!r}: expected 'sc' or 'ap'")
    path = Path(path)
    if not path.is_absolute() and str(path) != "<string>":
        path = Path.cwd() / path
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([Problem(str(path), "(syntax)", f"invalid TOML: {error}")]) from None
    reader = _Reader(path, role, document)

    node = _read_node(reader)
    tls = _read_tls(reader)
    control = _read_control(reader, node)
    subnets = _read_subnets(reader, node)
    database = _read_database(reader)
    bridge = _read_bridge(reader)
    lan = _read_lan(reader)
    radio, radio_interface = _read_radio(reader)
    vscs = _read_vscs(reader, radio_interface)
    gre = _read_gre(reader)
    metrics = _read_metrics(reader)
    roamctl = _read_roamctl(reader, node)
    reader.finish()
    _check_interfaces(reader, node, lan, radio, vscs)
    _check_metrics_port(reader, role, node, control, metrics)

    if reader.problems:
        raise ConfigError(reader.problems)
    return Config(
        role=role,
        path=path,
        node=node,
        tls=tls,
        control=control,
        subnets=subnets,
        bridge=bridge,
        lan=lan,
        gre=gre,
        metrics=metrics,
        roamctl=roamctl,
        vscs=vscs or (),
        database=database,
        radio=radio,
    )


def load(path: Path | str, role: str) -> Config:
    """
    Read and check the configuration file at C{path} for daemon C{role}.

    @raise ConfigError: if the file cannot be read or has any problem.
    """
    path = Path(path).absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([Problem(str(path), "(file)", f"cannot be read: {error}")]) from None
    return parse(text, role, path)


def check_files(config: Config) -> None:
    """
    Check the files and directories that C{config} names before anything
    is opened: the TLS files, the client database and the roamctl socket's
    path. A daemon then stops at start with the key at fault rather than
    with an error from SQLite or the socket layer.

    @raise ConfigError: naming each key whose file cannot be used.
    """
    problems = []

    def problem(key: str, reason: str) -> None:
        problems.append(Problem(str(config.path), key, reason))

    for key in ("ca", "certificate", "key"):
        reason = _unreadable_file(getattr(config.tls, key))
        if reason is not None:
            problem(f"tls.{key}", reason)
    if config.database is not None and config.database.path != ":memory:":
        reason = _unusable_database(Path(config.database.path))
        if reason is not None:
            problem("database.path", reason)
    reason = _unusable_socket_path(config.roamctl.socket)
    if reason is not None:
        problem("roamctl.socket", reason)
    if problems:
        raise ConfigError(problems)


# The first 16 bytes of every SQLite 3 database file (sqlite.org/fileformat.html, 1.3).
SQLITE_HEADER = b"SQLite format 3\x00"


def _unreadable_file(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"file not found: {path}"
    except OSError as error:
        return f"cannot read {path}: {error.strerror}"
    if not stat.S_ISREG(mode):
        return f"not a regular file: {path} is {_file_kind(mode)}; give the path of a PEM file"
    if not os.access(path, os.R_OK):
        return f"file not readable: {path}; check its owner and mode"
    return None


def _unusable_database(path: Path) -> str | None:
    directory = path.parent
    if not directory.is_dir():
        return f"directory {directory} not found; create it or choose another path"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"directory {directory} not writable; SQLite creates its journal there"
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"cannot use {path}: {error.strerror}"
    if not stat.S_ISREG(mode):
        return f"not a regular file: {path} is {_file_kind(mode)}; give a database file path"
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as error:
        return f"cannot read {path}: {error.strerror}; check its owner and mode"
    if header and header != SQLITE_HEADER:
        return f"{path} is not an SQLite database; move it away or choose another path"
    return None


def _unusable_socket_path(path: Path) -> str | None:
    if path.is_dir():
        return f"{path} is a directory; give the path of the socket file inside it"
    # The daemon creates missing directories, so check the nearest one that exists.
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory; give a socket path in a writable directory"
    # Root may write to /proc and /sys by os.access, but cannot bind a socket there.
    pseudo = existing.resolve().parts[1:2] in (("proc",), ("sys",))
    if pseudo or not os.access(existing, os.W_OK | os.X_OK):
        return f"directory {existing} not writable; give a socket path in a writable directory"
    return None


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"
