"""Helpers shared by the live tests: waiting for a condition, and a Mosquitto of a test's own."""

from __future__ import annotations

import getpass
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def wait_for(cond: Callable[[], bool], timeout_s: float = 60, what: str = "condition") -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class PrivateMosquitto:
    """A Mosquitto of the test's own, started with `settings` (lines of mosquitto.conf, listeners
    included) in `folder`; it runs as this user (started by root it would drop to a user who cannot
    read the test's files). `stop()` ends it; a new one may then take the same port (a restart)."""

    def __init__(self, folder: Path, settings: list[str]) -> None:
        assert MOSQUITTO is not None, "Mosquitto is not installed"
        conf = folder / f"mosquitto-{time.monotonic_ns()}.conf"
        conf.write_text("\n".join([f"user {getpass.getuser()}", *settings]) + "\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            raise RuntimeError(f"mosquitto did not start: {err[-500:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
