"""`sealsync watch DIR` as a background service that survives a reboot.

Linux: a systemd *user* unit, ~/.config/systemd/user/sealsync-NAME-HASH.service,
enabled with `systemctl --user enable --now` (it starts at login; with
`loginctl enable-linger` at boot). macOS: a launchd agent,
~/Library/LaunchAgents/org.sealsync.NAME-HASH.plist, loaded with
`launchctl bootstrap gui/UID`. One unit per folder; its name carries a hash
of the folder's absolute path, so two folders named alike never clash.

The service runs with no terminal, so it needs the folder's remembered key
(remember.py); `install` refuses a folder without one. Exit codes 2 (no key,
wrong passphrase) and 4 (the server refused or forgot us, or failed an
integrity check) stop it instead of restarting it in a loop: a person has to
look. Rendering is pure; every systemctl/launchctl call goes through a
`Runner`, so tests see the commands without running them.
"""
from __future__ import annotations

import hashlib
import os
import plistlib
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
FOLDER_MARK = "# sealsync folder: "  # first line of a unit: which folder it keeps


def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """The real runner: a command's exit status and output, never an exception."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(list(argv), 127, "", str(exc))


def unit_name(folder: Path) -> str:
    """sealsync-NAME-HASH: readable, unique per absolute path, safe for systemd."""
    tag = hashlib.sha256(os.fsencode(folder)).hexdigest()[:10]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.name).strip("-.")[:40] or "folder"
    return f"sealsync-{name}-{tag}"


def _systemd_quote(word: str) -> str:
    """One ExecStart word, quoted as systemd.service(5) reads it: backslash
    and quote escaped, `%` doubled (specifiers) and `$` doubled (variables)."""
    escaped = (word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
               .replace("$", "$$"))
    return f'"{escaped}"'


def command(folder: Path, python: str = sys.executable) -> list[str]:
    return [python, "-m", "sealsync_client", "watch", str(folder)]


def systemd_unit(folder: Path, python: str = sys.executable) -> str:
    """The user unit that runs `watch` for `folder`."""
    if "\n" in str(folder):
        raise ValueError("a folder path with a newline cannot go into a unit file")
    exec_start = " ".join(_systemd_quote(w) for w in command(folder, python))
    description = str(folder).replace("%", "%%")
    return "\n".join([
        f"{FOLDER_MARK}{folder}",
        "[Unit]",
        f"Description=Sealsync: keep {description} in sync",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={exec_start}",
        "Environment=PYTHONUNBUFFERED=1",
        "Restart=on-failure",
        "RestartSec=30",
        "RestartPreventExitStatus=2 4",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ])


def launchd_plist(folder: Path, python: str = sys.executable,
                  logs: Path | None = None) -> bytes:
    """The launchd agent that runs `watch` for `folder` (macOS)."""
    logs = logs or Path.home() / "Library" / "Logs"
    label = f"org.{unit_name(folder)}"
    return plistlib.dumps({
        "Label": label,
        "ProgramArguments": command(folder, python),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},  # restart after a crash, not after a stop
        "ThrottleInterval": 30,
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
        "StandardOutPath": str(logs / f"{label}.log"),
        "StandardErrorPath": str(logs / f"{label}.log"),
    })


@dataclass(frozen=True)
class Platform:
    """Where units go and how they are started, for one OS."""

    kind: str  # "systemd" | "launchd"
    unit_dir: Path

    @classmethod
    def here(cls) -> Platform:
        if sys.platform == "darwin":
            return cls("launchd", Path.home() / "Library" / "LaunchAgents")
        if sys.platform.startswith("linux"):
            config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
            return cls("systemd", Path(config) / "systemd" / "user")
        raise OSError(f"no background service support on {sys.platform} yet: run "
                      "`sealsync watch DIR` from your login items instead")

    def unit_path(self, folder: Path) -> Path:
        if self.kind == "launchd":
            return self.unit_dir / f"org.{unit_name(folder)}.plist"
        return self.unit_dir / f"{unit_name(folder)}.service"

    def render(self, folder: Path) -> bytes:
        if self.kind == "launchd":
            return launchd_plist(folder)
        return systemd_unit(folder).encode()

    def enable(self, folder: Path) -> list[list[str]]:
        if self.kind == "launchd":
            return [["launchctl", "bootstrap", f"gui/{os.getuid()}",
                     str(self.unit_path(folder))]]
        return [["systemctl", "--user", "daemon-reload"],
                ["systemctl", "--user", "enable", "--now", self.unit_path(folder).name]]

    def disable(self, folder: Path) -> list[list[str]]:
        if self.kind == "launchd":
            return [["launchctl", "bootout", f"gui/{os.getuid()}/org.{unit_name(folder)}"]]
        return [["systemctl", "--user", "disable", "--now", self.unit_path(folder).name]]

    def after_removal(self) -> list[list[str]]:
        return [] if self.kind == "launchd" else [["systemctl", "--user", "daemon-reload"]]

    def query(self, folder: Path) -> list[str]:
        if self.kind == "launchd":
            return ["launchctl", "print", f"gui/{os.getuid()}/org.{unit_name(folder)}"]
        return ["systemctl", "--user", "show", "--property=ActiveState,SubState,MainPID",
                self.unit_path(folder).name]

    def running(self, answer: subprocess.CompletedProcess[str]) -> tuple[bool, str]:
        """(running, how) from the query's answer."""
        if self.kind == "launchd":
            state = re.search(r"state = (\S+)", answer.stdout)
            word = state.group(1) if state else ("not loaded" if answer.returncode else "?")
            return word == "running", word
        props = dict(line.split("=", 1) for line in answer.stdout.splitlines() if "=" in line)
        if answer.returncode != 0 or not props:
            return False, (answer.stderr.strip() or "unknown (systemctl failed)")
        how = f"{props.get('ActiveState', '?')} ({props.get('SubState', '?')})"
        if props.get("MainPID", "0") != "0":
            how += f", pid {props['MainPID']}"
        return props.get("ActiveState") == "active", how


def installed(platform: Platform) -> list[Path]:
    """The folders that have a unit here (from each unit's first line)."""
    found = []
    for path in sorted(platform.unit_dir.glob("*sealsync-*")):
        try:
            if platform.kind == "launchd":
                with path.open("rb") as f:
                    found.append(Path(plistlib.load(f)["ProgramArguments"][-1]))
            else:
                first = path.read_text().split("\n", 1)[0]
                if first.startswith(FOLDER_MARK):
                    found.append(Path(first[len(FOLDER_MARK):]))
        except (OSError, ValueError, KeyError, IndexError, plistlib.InvalidFileException):
            continue
    return found
