"""Finding a Chromium for the console's browser tests and screenshots: Debian's /usr/bin/chromium,
installed with apt-get where this process may (root, or sudo without a password). Never `playwright
install`, which downloads browsers at run time."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


def find_or_install_chromium() -> tuple[Path | None, str]:
    """(path, '') when a browser is there, else (None, why not)."""
    if CHROMIUM.exists():
        return CHROMIUM, ""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return Path(found), ""
    if os.geteuid() == 0:
        command = ["apt-get", "install", "-y", "chromium"]
    elif shutil.which("sudo"):
        command = ["sudo", "-n", "apt-get", "install", "-y", "chromium"]
    else:
        return None, "no /usr/bin/chromium and no way to install it (not root, no sudo): apt-get install -y chromium"
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0 or not CHROMIUM.exists():
        return None, f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
    return CHROMIUM, ""
