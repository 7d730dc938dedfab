# -*- test-case-name: tests.daemons.test_services -*-
"""
Parts that both daemons share: command-line options and the service that starts
and stops a node.

L{NodeOptions} reads and checks the configuration file and the TLS files
while twistd parses the command line, so a wrong file stops the daemon
before it opens anything, with the file, key and reason on one line each.

L{NodeService} starts, in order: the data path (bridges, ports, own
address, GRE), the control plane, the roamctl socket and the metrics
endpoint; it stops them in the opposite order. A failure while starting is
logged and stops the reactor with exit status 1, because twistd would
otherwise go on running a half-started daemon. An operating system or
database error is logged as one line, C{FILE: KEY: reason}, naming the
configuration key to change (L{roaming.tap.startup}); any other error is
logged with its traceback.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from twisted.application import internet
from twisted.application.service import MultiService, Service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.server import Site

from roaming import config as config_module
from roaming.config import Config, ConfigError
from roaming.control.protocol import ConnectionSettings
from roaming.control.tls import CredentialsError, NodeCredentials, load_credentials
from roaming.metrics import make_registry, metrics_site_resource
from roaming.tap import views
from roaming.tap.devices import Devices, SystemDevices
from roaming.tap.localapi import local_api_service
from roaming.tap.node import NodeDatapath
from roaming.tap.stages import StageLog
from roaming.tap.startup import describe_start_failure

__all__ = ["DRAIN_TIME", "EXIT_START_FAILED", "NodeOptions", "NodeService", "connection_settings"]

# Exit status of a daemon that failed to start (sysexits.h EX_SOFTWARE
# would claim an internal error; 1 is the plain failure).
EXIT_START_FAILED = 1

# Seconds between stopping the control plane and stopping the data path, so
# that the resets of the closed connections still leave through the bridge.
DRAIN_TIME = 0.1


class NodeOptions(usage.Options):
    """
    Options shared by C{twistd roaming-sc} and C{twistd roaming-ap}.

    After parsing, C{self["config_object"]} is the checked
    L{roaming.config.Config} and C{self["credentials"]} the loaded
    L{NodeCredentials}.
    """

    role = ""
    optParameters = [
        ["config", "c", None, "Path of the TOML configuration file (see docs/configuration.md)."],
    ]

    def postOptions(self) -> None:
        """
        Load and check the configuration file and the TLS files it names.

        @raise usage.UsageError: naming the file, the key and the reason.
        """
        if self["config"] is None:
            raise usage.UsageError("missing --config: give the configuration file")
        try:
            loaded = config_module.load(self["config"], self.role)
            config_module.check_files(loaded)
        except ConfigError as error:
            raise usage.UsageError(f"invalid configuration:\n{error}") from None
        try:
            credentials = load_credentials(
                loaded.tls.certificate,
                loaded.tls.key,
                loaded.tls.ca,
                now=datetime.datetime.now(datetime.UTC),
            )
        except CredentialsError as error:
            raise usage.UsageError(f"{loaded.path}: tls: {error}") from None
        addresses = credentials.ip_addresses()
        if str(loaded.node.address) not in addresses:
            names = ", ".join(addresses) or "no IP address"
            raise usage.UsageError(
                f"{loaded.path}: tls.certificate: the certificate names {names}, not "
                f"node.address {loaded.node.address}; issue one for that address with roaming-pki"
            )
        self["config_object"] = loaded
        self["credentials"] = credentials


def connection_settings(config: Config) -> ConnectionSettings:
    """
    Derive the control connection timers from the C{[control]} section.
    """
    control = config.control
    return ConnectionSettings(
        identify_timeout=control.handshake_timeout,
        keepalive_interval=control.keepalive_interval,
        idle_timeout=control.keepalive_interval * (control.keepalive_misses + 0.5),
    )


class NodeService(MultiService):
    """
    One roaming node: the data path, the control plane and the operation
    endpoints (roamctl socket, metrics).

    Subclasses create the role object and the control runtime in
    L{build_control}, and may add ports in L{start_role}.

    @ivar client_columns: the column names of L{client_rows}.
    """

    log = Logger()
    peer_kinds: tuple[str, ...] = ()
    client_columns: tuple[str, ...] = ()

    def __init__(
        self,
        config: Config,
        credentials: NodeCredentials,
        *,
        reactor: Any = None,
        devices: Devices | None = None,
        stop_reactor_on_failure: bool = True,
    ) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.config = config
        self.credentials = credentials
        self.reactor = reactor
        self.devices = devices if devices is not None else SystemDevices(reactor)
        self.stages = StageLog(config.node.name, reactor)
        self.datapath = NodeDatapath(
            config,
            self.devices,
            reactor,
            self.stages,
            peer_kinds=self.peer_kinds,
            kind_of_peer=self.kind_of_peer,
        )
        self.control: Any = None
        self.started_at: float | None = None
        self.start_failure: BaseException | None = None
        self._stop_reactor_on_failure = stop_reactor_on_failure
        self._operations: list[Any] = []
        self.local_api: Any = None
        self.start_problem: config_module.Problem | None = None
        self._stage = "ports"
        self._stages_of_children: dict[int, str] = {}

    # Role hooks

    def kind_of_peer(self, address: Any) -> str:
        """
        Return the GRE port kind for a tunnel to C{address}.
        """
        return self.peer_kinds[0]

    def build_control(self) -> Any:
        """
        Create the control runtime; called once the data path runs.
        """
        raise NotImplementedError

    def start_role(self) -> None:
        """
        Start what only this role has, after the data path.
        """

    def stop_role(self) -> None:
        """
        Stop what L{start_role} started.
        """

    def status_rows(self) -> list[tuple[str, Any]]:
        """
        Return role-specific rows for C{roamctl status}.
        """
        return []

    def client_rows(self) -> list[tuple]:
        """
        Return one row per known client, in L{client_columns} order.
        """
        return []

    # Start and stop

    def startService(self) -> None:
        """
        Start the node, or log why it cannot start and stop the reactor.
        """
        try:
            self._start()
        except BaseException as error:
            self.start_failure = error
            self._log_start_failure(error)
            self._stop_everything()
            if self._stop_reactor_on_failure:
                # twistd exits with status 0 when the reactor stops; leave
                # with EXIT_START_FAILED once shutdown is done, so that a
                # supervisor sees the failure.
                self.reactor.addSystemEventTrigger("after", "shutdown", os._exit, EXIT_START_FAILED)
                self.reactor.callWhenRunning(self.reactor.stop)
            return

    def _log_start_failure(self, error: BaseException) -> None:
        problem = describe_start_failure(self.config, self._stage, error)
        if problem is None:
            # Not a setting: most likely a bug, so keep the traceback.
            self.log.failure(
                "roaming-{role} {name} failed to start: {error}",
                role=self.config.role,
                name=self.config.node.name,
                error=repr(error),
            )
            return
        self.start_problem = problem
        # One line with the key to change, and as a plain string field so
        # that JSON log observers keep it.
        self.log.critical(
            "roaming-{role} {name} failed to start: {problem}",
            role=self.config.role,
            name=self.config.node.name,
            problem=str(problem),
        )

    def _start(self) -> None:
        self.log.info(
            "Starting roaming-{role} {name} at {address} from {path}",
            role=self.config.role,
            name=self.config.node.name,
            address=str(self.config.node.interface_address),
            path=str(self.config.path),
        )
        self._stage = "ports"
        self.datapath.start()
        self.start_role()
        self._stage = "database"
        self.control = self.build_control()
        self.control.setServiceParent(self)
        self._start_operations()
        # MultiService.startService, one child at a time, to know which failed.
        Service.startService(self)
        for child in self:
            self._stage = self._stages_of_children.get(id(child), "control")
            child.startService()
        self.started_at = self.reactor.seconds()
        self.after_start()
        self.log.info(
            "roaming-{role} {name} started", role=self.config.role, name=self.config.node.name
        )

    def after_start(self) -> None:
        """
        Run the role's first actions once everything has started.
        """

    def _start_operations(self) -> None:
        api = local_api_service(self.reactor, self.config.roamctl.socket, views.make_views(self))
        api.setServiceParent(self)
        self._operations.append(api)
        self._stages_of_children[id(api)] = "roamctl"
        self.local_api = api.factory
        metrics = self.config.metrics
        if metrics.enabled:
            registry = make_registry(lambda: views.samples(self), self.config.node.name)
            site = Site(metrics_site_resource(registry))
            server = internet.TCPServer(
                metrics.port, site, interface=metrics.host, reactor=self.reactor
            )
            server.setServiceParent(self)
            self._operations.append(server)
            self._stages_of_children[id(server)] = "metrics"

    def stopService(self) -> Any:
        """
        Stop the operation endpoints and the control plane, then, once they
        have stopped and the frames they sent had time to leave, the data
        path.

        @return: a Deferred that fires when everything has stopped.
        """
        self.log.info(
            "Stopping roaming-{role} {name}", role=self.config.role, name=self.config.node.name
        )
        stopped = MultiService.stopService(self) if self.running else defer.succeed(None)
        stopped.addBoth(lambda _: task.deferLater(self.reactor, DRAIN_TIME, self._stop_everything))
        return stopped

    def _stop_everything(self) -> None:
        # After a failed start some children never started, and a
        # StreamServerEndpointService cannot be stopped before it started.
        for child in reversed(list(self)):
            if child.running:
                child.stopService()
        self.running = 0
        for child in list(self):
            child.disownServiceParent()
        self._operations.clear()
        self._stages_of_children.clear()
        self.stop_role()
        self.datapath.stop()
