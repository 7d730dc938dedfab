# -*- test-case-name: tests.daemons.test_config -*-
"""
Tests for L{roaming.config}: the etc/ examples load, defaults apply, and
every rejection names the file, the key and the reason.
"""

import ipaddress
from pathlib import Path

import pytest

from roaming import config
from roaming.config import ConfigError, Problem

ETC = Path(__file__).resolve().parents[2] / "etc"

MINIMAL_SC = """
[node]
name = "sc1"
address = "10.1.0.2"
prefix = 24

[tls]
ca = "ca.pem"
certificate = "sc1.pem"
key = "sc1.key"

[control]
primary = "10.1.0.2"

[database]
path = ":memory:"

[ports.lan]
interface = "eth0"
"""

MINIMAL_AP = """
[node]
name = "ap1"
address = "10.1.0.11"
prefix = 24

[tls]
ca = "/pki/ca.pem"
certificate = "/pki/ap1.pem"
key = "/pki/ap1.key"

[control]
controller = "10.1.0.2"

[[vsc]]
id = 1
name = "staff"

[ports.lan]
interface = "eth0"

[ports.radio]
kind = "emulated"
interface = "wlan0"
control = "/run/radio.sock"
"""

PATH = "/etc/roaming/test.toml"


def problems_of(text, role):
    """
    Parse C{text} expecting a L{ConfigError}, and return its problems as
    C{(key, reason)} pairs after checking that each names the file.
    """
    with pytest.raises(ConfigError) as caught:
        config.parse(text, role, PATH)
    for problem in caught.value.problems:
        assert problem.path == PATH
        assert str(problem).startswith(f"{PATH}: {problem.key}: ")
    return [(problem.key, problem.reason) for problem in caught.value.problems]


def replace(text, old, new):
    """
    Return C{text} with C{old} replaced by C{new}, which must occur once.
    """
    assert text.count(old) == 1, old
    return text.replace(old, new)


class TestExamples:
    """
    The example files in etc/ are valid and match docs/configuration.md.
    """

    def test_sc_example_loads(self):
        loaded = config.load(ETC / "roaming-sc.toml", "sc")
        assert loaded.role == "sc"
        assert loaded.node.name == "sc1"
        assert loaded.control.primary == ipaddress.IPv4Address("10.1.0.2")
        assert loaded.control.controller is None
        assert loaded.database.path == "/var/lib/roaming/sc1.sqlite"
        assert loaded.tls.ca == ETC / "pki" / "ca.crt"
        assert loaded.metrics.port == 9380
        assert loaded.radio is None
        assert loaded.vscs == ()

    def test_ap_example_loads(self):
        loaded = config.load(ETC / "roaming-ap.toml", "ap")
        assert loaded.role == "ap"
        assert loaded.control.controller == ipaddress.IPv4Address("10.1.0.2")
        assert loaded.radio.kind == "hostapd"
        assert loaded.radio.control == Path("/var/run/hostapd")
        assert [vsc.name for vsc in loaded.vscs] == ["staff"]
        assert loaded.subnets == (config.SubnetConfig(ipaddress.IPv4Network("10.1.0.0/24"), 0),)
        assert loaded.database is None

    def test_example_for_other_role_rejected(self):
        with pytest.raises(ConfigError) as caught:
            config.load(ETC / "roaming-sc.toml", "ap")
        keys = {problem.key for problem in caught.value.problems}
        assert "database" in keys
        assert "control.primary" in keys
        assert "ports.radio" in keys
        assert "vsc" in keys

    def test_documented_keys_match_parser(self):
        """
        Every key of docs/configuration.md appears in a parsed configuration
        object, and every field of the objects is documented.
        """
        doc = (ETC.parent / "docs" / "configuration.md").read_text()
        documented = set()
        section = None
        for line in doc.splitlines():
            if line.startswith("## `"):
                section = line.split("`")[1].strip("[]")
            elif line.startswith("| `") and section is not None:
                documented.add((section, line.split("`")[1]))
        expected = {
            ("node", "name"),
            ("node", "address"),
            ("node", "prefix"),
            ("node", "gateway"),
            ("node", "interface"),
            ("tls", "ca"),
            ("tls", "certificate"),
            ("tls", "key"),
            ("subnet", "network"),
            ("subnet", "vlan"),
            ("database", "path"),
            ("database", "max_clients"),
            ("ports.lan", "interface"),
            ("ports.lan", "kind"),
            ("ports.radio", "kind"),
            ("ports.radio", "interface"),
            ("ports.radio", "control"),
            ("metrics", "listen"),
            ("roamctl", "socket"),
        }
        for cls, section_name in (
            (config.ControlConfig, "control"),
            (config.VSCConfig, "vsc"),
            (config.BridgeConfig, "bridge"),
            (config.GREConfig, "gre"),
        ):
            expected.update((section_name, field.name) for field in cls.__attrs_attrs__)
        assert documented == expected


class TestDefaults:
    """
    Keys left out take the documented defaults.
    """

    def test_sc_defaults(self):
        loaded = config.parse(MINIMAL_SC, "sc", PATH)
        assert loaded.node.interface == "rmbr0"
        assert loaded.node.gateway is None
        assert loaded.control == config.ControlConfig(primary=ipaddress.IPv4Address("10.1.0.2"))
        assert loaded.control.port == 7443
        assert loaded.bridge == config.BridgeConfig(300.0, 8192, 1024)
        assert loaded.bridge.max_frame_size == 1522
        assert loaded.gre == config.GREConfig("ip", 4754, 1500, 1.0, 3, False)
        assert loaded.lan.kind == "packet"
        assert not loaded.metrics.enabled
        assert loaded.roamctl.socket == Path("/run/roaming/sc1.sock")
        assert loaded.database.max_clients == 100_000

    def test_relative_paths_follow_file(self):
        loaded = config.parse(MINIMAL_SC, "sc", PATH)
        assert loaded.tls.ca == Path("/etc/roaming/ca.pem")
        assert loaded.tls.key == Path("/etc/roaming/sc1.key")

    def test_memory_database_kept(self):
        loaded = config.parse(MINIMAL_SC, "sc", PATH)
        assert loaded.database.path == ":memory:"

    def test_subnet_defaults_to_node(self):
        loaded = config.parse(MINIMAL_SC, "sc", PATH)
        assert loaded.subnets == (config.SubnetConfig(ipaddress.IPv4Network("10.1.0.0/24"), 0),)

    def test_ap_defaults(self):
        loaded = config.parse(MINIMAL_AP, "ap", PATH)
        (vsc,) = loaded.vscs
        assert vsc == config.VSCConfig(1, "staff", "staff", 0, "wlan0", False, True)
        assert loaded.radio == config.RadioConfig("emulated", "wlan0", Path("/run/radio.sock"))
        assert loaded.vlans == (0,)

    def test_hostapd_control_default(self):
        text = replace(MINIMAL_AP, 'kind = "emulated"', 'kind = "hostapd"')
        text = replace(text, 'control = "/run/radio.sock"\n', "")
        loaded = config.parse(text, "ap", PATH)
        assert loaded.radio.control == Path("/var/run/hostapd")

    def test_vlans_from_vscs_and_subnets(self):
        text = MINIMAL_AP + (
            '[[subnet]]\nnetwork = "10.1.0.0/24"\n'
            '[[subnet]]\nnetwork = "10.9.0.0/24"\nvlan = 20\n'
            '[[vsc]]\nid = 2\nname = "guest"\nvlan = 10\n'
        )
        loaded = config.parse(text, "ap", PATH)
        assert loaded.vlans == (0, 10, 20)
        assert loaded.subnets_on_vlan(20) == (ipaddress.IPv4Network("10.9.0.0/24"),)
        assert loaded.subnets_on_vlan(10) == ()
        assert loaded.lan.interface_for_vlan(0) == "eth0"
        assert loaded.lan.interface_for_vlan(10) == "eth0.10"

    def test_metrics_listen_parsed(self):
        loaded = config.parse(MINIMAL_SC + '[metrics]\nlisten = "127.0.0.1:9380"\n', "sc", PATH)
        assert loaded.metrics == config.MetricsConfig("127.0.0.1", 9380)
        assert loaded.metrics.enabled


# Each case: role, base text, (old, new) replacement or appended text,
# expected key, and a fragment of the expected reason.
REJECTIONS = [
    ("sc", MINIMAL_SC, ("[node]", "[nodes]"), "nodes", "unknown section"),
    (
        "sc",
        MINIMAL_SC,
        ("prefix = 24", 'prefix = 24\ncolour = "red"'),
        "node.colour",
        "unknown key",
    ),
    ("sc", MINIMAL_SC, ('name = "sc1"\n', ""), "node.name", "missing required key"),
    ("sc", MINIMAL_SC, ('name = "sc1"', 'name = "s c"'), "node.name", "invalid name 's c'"),
    (
        "sc",
        MINIMAL_SC,
        ('name = "sc1"', "name = 1"),
        "node.name",
        "expected a string, got an integer",
    ),
    (
        "sc",
        MINIMAL_SC,
        ('"10.1.0.2"\nprefix', '"10.1.0.300"\nprefix'),
        "node.address",
        "invalid IPv4",
    ),
    ("sc", MINIMAL_SC, ("prefix = 24", "prefix = 33"), "node.prefix", "between 1 and 32"),
    ("sc", MINIMAL_SC, ("prefix = 24", "prefix = true"), "node.prefix", "expected an integer"),
    ("sc", MINIMAL_SC, ("prefix = 24", 'prefix = "24"'), "node.prefix", "expected an integer"),
    (
        "sc",
        MINIMAL_SC,
        ("prefix = 24", 'prefix = 24\ngateway = "10.2.0.1"'),
        "node.gateway",
        "inside 10.1.0.0/24",
    ),
    (
        "sc",
        MINIMAL_SC,
        ("prefix = 24", 'prefix = 24\ninterface = "averyveryverylongname"'),
        "node.interface",
        "invalid interface name",
    ),
    (
        "sc",
        MINIMAL_SC,
        ("prefix = 24", 'prefix = 24\ninterface = "a/b"'),
        "node.interface",
        "invalid interface name",
    ),
    ("sc", MINIMAL_SC, ('ca = "ca.pem"\n', ""), "tls.ca", "missing required key"),
    ("sc", MINIMAL_SC, ('key = "sc1.key"', 'key = ""'), "tls.key", "expected a file path"),
    (
        "sc",
        MINIMAL_SC,
        ('[control]\nprimary = "10.1.0.2"\n', ""),
        "control",
        "missing required section",
    ),
    (
        "sc",
        MINIMAL_SC,
        ('primary = "10.1.0.2"', 'primary = "sc1"'),
        "control.primary",
        "invalid IPv4",
    ),
    (
        "sc",
        MINIMAL_SC,
        ('primary = "10.1.0.2"', 'primary = "10.1.0.2"\ncontroller = "10.1.0.3"'),
        "control.controller",
        "only valid for roaming-ap",
    ),
    (
        "sc",
        MINIMAL_SC,
        ('primary = "10.1.0.2"', 'primary = "10.1.0.2"\nport = 0'),
        "control.port",
        "between 1 and 65535",
    ),
    (
        "sc",
        MINIMAL_SC,
        ('primary = "10.1.0.2"', 'primary = "10.1.0.2"\nkeepalive_interval = 0'),
        "control.keepalive_interval",
        "> 0",
    ),
    (
        "sc",
        MINIMAL_SC,
        ('primary = "10.1.0.2"', 'primary = "10.1.0.2"\nkeepalive_interval = inf'),
        "control.keepalive_interval",
        "> 0",
    ),
    (
        "sc",
        MINIMAL_SC,
        ('primary = "10.1.0.2"', 'primary = "10.1.0.2"\nkeepalive_interval = "1s"'),
        "control.keepalive_interval",
        "expected a number of seconds",
    ),
    (
        "sc",
        MINIMAL_SC,
        ('primary = "10.1.0.2"', 'primary = "10.1.0.2"\nkeepalive_misses = 0'),
        "control.keepalive_misses",
        "between 1 and 100",
    ),
    (
        "sc",
        MINIMAL_SC,
        ('primary = "10.1.0.2"', 'primary = "10.1.0.2"\nreconnect_initial = 5\nreconnect_max = 1'),
        "control.reconnect_max",
        "at least reconnect_initial",
    ),
    ("sc", MINIMAL_SC, ('path = ":memory:"', 'path = ""'), "database.path", "expected a file path"),
    (
        "sc",
        MINIMAL_SC,
        ('path = ":memory:"', 'path = ":memory:"\nmax_clients = 0'),
        "database.max_clients",
        ">= 1",
    ),
    (
        "sc",
        MINIMAL_SC,
        ('[database]\npath = ":memory:"\n', ""),
        "database",
        "missing required section",
    ),
    (
        "sc",
        MINIMAL_SC.replace('[database]\npath = ":memory:"\n', ""),
        ("[node]", "database = 3\n[node]"),
        "database",
        "expected a table, got an integer",
    ),
    (
        "sc",
        MINIMAL_SC,
        ('interface = "eth0"', 'interface = "eth0"\nkind = "veth"'),
        "ports.lan.kind",
        "expected 'packet' or 'tap'",
    ),
    (
        "sc",
        MINIMAL_SC,
        ('[ports.lan]\ninterface = "eth0"\n', ""),
        "ports.lan",
        "missing required section",
    ),
    ("sc", MINIMAL_SC, "[ports.wan]\ninterface = 'eth1'\n", "ports.wan", "unknown section"),
    (
        "sc",
        MINIMAL_SC,
        "[ports.radio]\nkind = 'hostapd'\ninterface = 'wlan0'\n",
        "ports.radio",
        "only valid for roaming-ap",
    ),
    ("sc", MINIMAL_SC, "[[vsc]]\nid = 1\nname = 'x'\n", "vsc", "only valid for roaming-ap"),
    (
        "sc",
        MINIMAL_SC,
        "[[subnet]]\nnetwork = '10.1.0.0/24'\nvlan = 3\n",
        "subnet[0].vlan",
        "only valid for roaming-ap",
    ),
    (
        "sc",
        MINIMAL_SC,
        "[[subnet]]\nnetwork = '10.1.0.1/24'\n",
        "subnet[0].network",
        "host bits set",
    ),
    (
        "sc",
        MINIMAL_SC,
        "[[subnet]]\nnetwork = '10.1.0.0'\n",
        "subnet[0].network",
        "expected address/prefix",
    ),
    (
        "sc",
        MINIMAL_SC,
        "[[subnet]]\nnetwork = '10.1.0.0/16'\n[[subnet]]\nnetwork = '10.1.2.0/24'\n",
        "subnet[1].network",
        "overlaps subnet[0]",
    ),
    (
        "sc",
        MINIMAL_SC,
        ("[node]", "subnet = '10.1.0.0/24'\n[node]"),
        "subnet",
        "expected an array of tables",
    ),
    ("sc", MINIMAL_SC, "[bridge]\naging_time = -1\n", "bridge.aging_time", "> 0"),
    ("sc", MINIMAL_SC, "[bridge]\nmax_entries = 4\n", "bridge.max_entries", ">= 16"),
    ("sc", MINIMAL_SC, "[bridge]\nmax_l3_entries = 0\n", "bridge.max_l3_entries", ">= 1"),
    (
        "sc",
        MINIMAL_SC,
        "[bridge]\nmax_frame_size = 59\n",
        "bridge.max_frame_size",
        "between 60 and 9216",
    ),
    (
        "sc",
        MINIMAL_SC,
        "[bridge]\nmax_frame_size = 9217\n",
        "bridge.max_frame_size",
        "between 60 and 9216",
    ),
    (
        "sc",
        MINIMAL_SC,
        "[bridge]\nmax_frame_size = 1522.0\n",
        "bridge.max_frame_size",
        "expected an integer",
    ),
    ("sc", MINIMAL_SC, "[gre]\ntransport = 'gre'\n", "gre.transport", "expected 'ip' or 'udp'"),
    ("sc", MINIMAL_SC, "[gre]\nmtu = 100\n", "gre.mtu", "between 576 and 9000"),
    ("sc", MINIMAL_SC, "[gre]\nudp_port = 65535\n", "gre.udp_port", "between 1 and 65534"),
    (
        "sc",
        MINIMAL_SC,
        "[gre]\nsequence = 1\n",
        "gre.sequence",
        "expected a boolean, got an integer",
    ),
    (
        "sc",
        MINIMAL_SC,
        "[gre]\nkeepalive_misses = 101\n",
        "gre.keepalive_misses",
        "between 1 and 100",
    ),
    ("sc", MINIMAL_SC, "[metrics]\nlisten = '9380'\n", "metrics.listen", "expected host:port"),
    ("sc", MINIMAL_SC, "[metrics]\nlisten = 'localhost:9380'\n", "metrics.listen", "IPv4 address"),
    (
        "sc",
        MINIMAL_SC,
        "[metrics]\nlisten = '127.0.0.1:0'\n",
        "metrics.listen",
        "between 1 and 65535",
    ),
    (
        "sc",
        MINIMAL_SC,
        "[roamctl]\nsocket = '/" + "x" * 120 + "'\n",
        "roamctl.socket",
        "longer than 107 bytes",
    ),
    ("sc", MINIMAL_SC, "[roamctl]\nsockets = '/run/x'\n", "roamctl.sockets", "unknown key"),
    (
        "ap",
        MINIMAL_AP,
        ('controller = "10.1.0.2"', 'controller = "10.1.0.11"'),
        "control.controller",
        "its own controller",
    ),
    (
        "ap",
        MINIMAL_AP,
        ('controller = "10.1.0.2"', 'controller = "10.1.0.2"\nprimary = "10.1.0.2"'),
        "control.primary",
        "only valid for roaming-sc",
    ),
    (
        "ap",
        MINIMAL_AP,
        ('controller = "10.1.0.2"\n', ""),
        "control.controller",
        "missing required key",
    ),
    ("ap", MINIMAL_AP, "[database]\npath = 'x'\n", "database", "only valid for roaming-sc"),
    ("ap", MINIMAL_AP, ('[[vsc]]\nid = 1\nname = "staff"\n', ""), "vsc", "at least one [[vsc]]"),
    ("ap", MINIMAL_AP, ("id = 1", "id = 0"), "vsc[0].id", "between 1 and 255"),
    (
        "ap",
        MINIMAL_AP,
        ('name = "staff"\n', 'name = "staff"\nssid = ""\n'),
        "vsc[0].ssid",
        "1 to 32 bytes",
    ),
    (
        "ap",
        MINIMAL_AP,
        ('name = "staff"\n', 'name = "staff"\nvlan = 4095\n'),
        "vsc[0].vlan",
        "between 0 and 4094",
    ),
    (
        "ap",
        MINIMAL_AP,
        ('name = "staff"\n', 'name = "staff"\naccess_controlled = "yes"\n'),
        "vsc[0].access_controlled",
        "expected a boolean",
    ),
    (
        "ap",
        MINIMAL_AP,
        ('name = "staff"\n', 'name = "staff"\nroaming = true\n'),
        "vsc[0].roaming",
        "unknown key",
    ),
    ("ap", MINIMAL_AP, "[[vsc]]\nid = 1\nname = 'again'\n", "vsc[1].id", "duplicate VSC id 1"),
    (
        "ap",
        MINIMAL_AP,
        ('kind = "emulated"', 'kind = "real"'),
        "ports.radio.kind",
        "expected 'hostapd' or 'emulated'",
    ),
    (
        "ap",
        MINIMAL_AP,
        ('control = "/run/radio.sock"\n', ""),
        "ports.radio.control",
        "missing required key",
    ),
    (
        "ap",
        MINIMAL_AP,
        (
            '[ports.radio]\nkind = "emulated"\ninterface = "wlan0"\ncontrol = "/run/radio.sock"\n',
            "",
        ),
        "ports.radio",
        "missing required section",
    ),
    (
        "ap",
        MINIMAL_AP,
        "[[subnet]]\nnetwork = '10.1.0.0/24'\nvlan = -1\n",
        "subnet[0].vlan",
        "between 0 and 4094",
    ),
]


@pytest.mark.parametrize(
    ("role", "base", "change", "key", "reason"),
    REJECTIONS,
    ids=[f"{case[3]}-{index}" for index, case in enumerate(REJECTIONS)],
)
def test_rejection_names_key_and_reason(role, base, change, key, reason):
    text = replace(base, *change) if isinstance(change, tuple) else base + change
    found = problems_of(text, role)
    matching = [found_reason for found_key, found_reason in found if found_key == key]
    assert matching, f"no problem for {key}; found {found}"
    assert any(reason in found_reason for found_reason in matching), matching


def test_every_problem_reported_at_once():
    text = replace(MINIMAL_SC, "prefix = 24", "prefix = 40")
    text = replace(text, 'interface = "eth0"', 'interface = "eth0"\nkind = 1')
    text += "[gre]\nmtu = 1\n"
    keys = [key for key, _ in problems_of(text, "sc")]
    assert keys == ["node.prefix", "ports.lan.kind", "gre.mtu"]


def test_toml_syntax_error_names_file():
    found = problems_of("[node\nname = 1", "sc")
    assert found[0][0] == "(syntax)"
    assert "invalid TOML" in found[0][1]


def test_missing_file_names_file(tmp_path):
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        config.load(missing, "sc")
    (problem,) = caught.value.problems
    assert problem.path == str(missing)
    assert "cannot be read" in problem.reason


def test_message_has_one_line_per_problem():
    error = ConfigError([Problem("/a.toml", "x.y", "bad"), Problem("/a.toml", "z", "worse")])
    assert str(error) == "/a.toml: x.y: bad\n/a.toml: z: worse"


def test_unknown_role_rejected():
    with pytest.raises(ValueError, match="invalid role 'xx'"):
        config.parse(MINIMAL_SC, "xx")


class TestCheckFiles:
    """
    L{config.check_files} names the TLS files that are missing.
    """

    def test_missing_files_named(self, tmp_path):
        path = tmp_path / "sc.toml"
        (tmp_path / "ca.pem").write_text("x")
        loaded = config.parse(MINIMAL_SC, "sc", path)
        with pytest.raises(ConfigError) as caught:
            config.check_files(loaded)
        keys = [problem.key for problem in caught.value.problems]
        assert keys == ["tls.certificate", "tls.key"]
        assert all(problem.path == str(path) for problem in caught.value.problems)
        assert str(tmp_path / "sc1.pem") in caught.value.problems[0].reason

    def test_present_files_pass(self, tmp_path):
        for name in ("ca.pem", "sc1.pem", "sc1.key"):
            (tmp_path / name).write_text("x")
        text = MINIMAL_SC + f"[roamctl]\nsocket = '{tmp_path}/sc1.sock'\n"
        loaded = config.parse(text, "sc", tmp_path / "sc.toml")
        config.check_files(loaded)
        assert loaded.tls.certificate.is_file()


def test_control_port_matches_control_service():
    from roaming.control.service import CONTROL_PORT

    assert config.DEFAULT_CONTROL_PORT == CONTROL_PORT


def test_frame_size_limit_read():
    loaded = config.parse(MINIMAL_SC + "[bridge]\nmax_frame_size = 9216\n", "sc", PATH)
    assert loaded.bridge.max_frame_size == 9216


def test_frame_size_bounds_fit_bridge_and_engine():
    from roaming.bridge import Bridge
    from roaming.tunnel import GreEndpoint

    for size in (config.MIN_FRAME_SIZE, config.MAX_FRAME_SIZE):
        Bridge("vlan0", max_frame_size=size)
        assert GreEndpoint("192.0.2.1", max_frame_size=size).max_frame_size == size
