# -*- test-case-name: tests.lab.test_processes -*-
"""
Start programs inside lab namespaces and stop them again, by process id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import roaming
from roaming.lab.topology import LabError

__all__ = ["SOURCE_ROOT", "LabProcess", "ProcessGroup", "wait_for"]

#: The directory that contains the running roaming package.
SOURCE_ROOT = Path(roaming.__file__).resolve().parent.parent


@dataclass
class LabProcess:
    """
    A program the lab started, with the file its output goes to.
    """

    name: str
    popen: subprocess.Popen
    log_path: Path
    #: A second log the program writes itself, such as twistd's --logfile.
    own_log_path: Path | None = None

    @property
    def pid(self) -> int:
        """
        The process id.
        """
        return self.popen.pid

    def running(self) -> bool:
        """
        Return whether the process has not exited yet.
        """
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """
        Return the last C{lines} lines of the process's output.
        """
        text = ""
        for path in (self.log_path, self.own_log_path):
            if path is None:
                continue
            try:
                text += path.read_text(errors="replace")
            except OSError:
                continue
        return "\n".join(text.splitlines()[-lines:])


class ProcessGroup:
    """
    The programs one lab run started. L{stop_all} ends each of them by its
    own process id, newest first.
    """

    def __init__(self, log_directory: Path) -> None:
        self.log_directory = log_directory
        self.processes: list[LabProcess] = []

    def start(
        self,
        name: str,
        namespace: str,
        command: list[str],
        *,
        environment: dict[str, str] | None = None,
        own_log_path: Path | None = None,
    ) -> LabProcess:
        """
        Start C{command} in C{namespace} with its output in
        C{<log_directory>/<name>.log}.
        """
        log_path = self.log_directory / f"{name}.log"
        env = dict(os.environ)
        # The children import this same roaming package, also when it runs
        # from a source tree, and twistd finds its plugins under that root.
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")])
        )
        if environment:
            env.update(environment)
        with open(log_path, "ab") as log_file:
            popen = subprocess.Popen(
                ["ip", "netns", "exec", namespace, *command],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                # Its own session, so a Ctrl-C in the terminal reaches only
                # the lab, which then stops everything in order.
                start_new_session=True,
            )
        process = LabProcess(name, popen, log_path, own_log_path)
        self.processes.append(process)
        return process

    def stop(self, process: LabProcess, *, timeout: float = 5.0) -> int | None:
        """
        Send SIGTERM, wait up to C{timeout} seconds, then SIGKILL; return the
        exit status.
        """
        if process.running():
            process.popen.send_signal(signal.SIGTERM)
            try:
                return process.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                process.popen.kill()
        return process.popen.wait(timeout)

    def stop_all(self) -> None:
        """
        Stop every process this group started, newest first.
        """
        for process in reversed(self.processes):
            # NOTE: a process that survives SIGKILL for 5 s is stuck in the
            # kernel. It is left behind, so the namespace removal that
            # follows may fail.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop(process)
        self.processes = []

    def check_alive(self) -> None:
        """
        @raise LabError: if a process exited, with the end of its output.
        """
        for process in self.processes:
            if not process.running():
                raise LabError(
                    f"{process.name} (pid {process.pid}) exited with status "
                    f"{process.popen.returncode}; its output ends with:\n{process.log_tail()}"
                )


def wait_for(
    condition: object, *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> object:
    """
    Call C{condition()} every C{interval} seconds until it returns a true
    value, and return that value.

    @raise LabError: if C{timeout} seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
