"""`sealsync service`: the unit it writes, checked by systemd itself where
systemd-analyze exists, and install/status/uninstall through the CLI with
a recording runner in place of systemctl (no test starts a service)."""
from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner
from sealsync_client import cli_service
from sealsync_client.cli import main
from sealsync_client.cli_ops import slot
from sealsync_client.keyfile import DeviceKeys
from sealsync_client.service import Platform, installed, launchd_plist, systemd_unit, unit_name
from sealsync_client.state import Config, State

USER, DEVICE = "a" * 32, "b" * 32


def test_the_unit_runs_watch_on_the_folder_and_stops_on_errors_a_person_must_see() -> None:
    folder = Path("/home/me/My Sync")
    unit = systemd_unit(folder, python="/opt/venv/bin/python")
    assert unit.splitlines()[0] == "# sealsync folder: /home/me/My Sync"
    lines = set(unit.splitlines())
    assert 'ExecStart="/opt/venv/bin/python" "-m" "sealsync_client" "watch" ' \
           '"/home/me/My Sync"' in lines
    assert {"[Unit]", "[Service]", "[Install]", "WantedBy=default.target",
            "Restart=on-failure", "RestartPreventExitStatus=2 4"} <= lines


def test_specifiers_variables_and_quotes_in_a_path_are_escaped() -> None:
    unit = systemd_unit(Path('/d/100% "$HOME"\\x'), python="/p")
    assert r'"watch" "/d/100%% \"$$HOME\"\\x"' in unit
    with pytest.raises(ValueError, match="newline"):
        systemd_unit(Path("/d/a\nb"))


def test_unit_names_are_safe_and_unique_per_path() -> None:
    a, b = unit_name(Path("/x/Sync Stuff!")), unit_name(Path("/y/Sync Stuff!"))
    assert a.startswith("sealsync-Sync-Stuff-") and a != b
    assert unit_name(Path("/")) .startswith("sealsync-folder-")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed here")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    folder = tmp_path / "My 100% Sync"
    folder.mkdir()
    unit = tmp_path / f"{unit_name(folder)}.service"
    unit.write_text(systemd_unit(folder))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and unit.name not in done.stderr, done.stderr
    # The check can fail: a unit whose program does not exist is refused.
    unit.write_text(systemd_unit(folder, python=str(tmp_path / "no-python")))
    bad = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0


def test_the_launchd_agent_runs_watch_at_load_and_after_a_crash(tmp_path: Path) -> None:
    agent = plistlib.loads(launchd_plist(Path("/Users/me/Sync"), python="/p",
                                         logs=tmp_path))
    assert agent["ProgramArguments"] == ["/p", "-m", "sealsync_client", "watch",
                                         "/Users/me/Sync"]
    assert agent["RunAtLoad"] is True and agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["Label"].startswith("org.sealsync-Sync-")


class Recorder:
    """Stands in for systemctl: records each command, answers `show`."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.active = False

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        if "enable" in argv:
            self.active = True
        if "disable" in argv:
            self.active = False
        out = ""
        if "show" in argv:
            out = (f"ActiveState={'active' if self.active else 'inactive'}\n"
                   f"SubState={'running' if self.active else 'dead'}\n"
                   f"MainPID={4242 if self.active else 0}\n")
        return subprocess.CompletedProcess(list(argv), 0, out, "")


@pytest.fixture
def systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Recorder, Path]:
    recorder = Recorder()
    units = tmp_path / "units"
    monkeypatch.setattr(cli_service, "runner", recorder)
    monkeypatch.setattr(cli_service, "platform", lambda: Platform("systemd", units))
    monkeypatch.setenv("SEALSYNC_REMEMBER_DIR", str(tmp_path / "remembered"))
    return recorder, units


def a_folder(root: Path, remembered: bool = True) -> Path:
    root.mkdir()
    Config("http://127.0.0.1:9", USER, DEVICE, "laptop").save(root)
    if remembered:
        assert slot(root).keep(DeviceKeys(bytes(32), USER, "kdf")) is None
    return root


def test_install_status_uninstall(systemd: tuple[Recorder, Path], tmp_path: Path) -> None:
    recorder, units = systemd
    folder = a_folder(tmp_path / "Sync")
    cli = CliRunner()
    done = cli.invoke(main, ["service", "install", str(folder)])
    assert done.exit_code == 0, done.output
    unit = units / f"{unit_name(folder)}.service"
    assert unit.read_text() == systemd_unit(folder)
    assert recorder.calls == [["systemctl", "--user", "daemon-reload"],
                              ["systemctl", "--user", "enable", "--now", unit.name]]
    assert installed(Platform("systemd", units)) == [folder]

    shown = cli.invoke(main, ["service", "status", str(folder)])
    assert "active (running), pid 4242" in shown.output
    assert "no pass recorded yet" in shown.output
    state = State(folder)  # what `watch` records after each pass
    try:
        with cli_service.recorded(state) as done_pass:
            from sealsync_client.engine import Report
            report = Report()
            report.uploaded.append("a.txt")
            done_pass(report)
    finally:
        state.close()
    rows = json.loads(cli.invoke(main, ["service", "status", "--json"]).output)
    assert [(r["folder"], r["running"]) for r in rows] == [(str(folder), True)]
    assert rows[0]["last_pass"]["ok"] is True
    assert rows[0]["last_pass"]["counts"] == {"uploaded": 1}
    assert "ok (1 uploaded)" in cli.invoke(main, ["service", "status", str(folder)]).output

    recorder.calls.clear()
    gone = cli.invoke(main, ["service", "uninstall", str(folder)])
    assert gone.exit_code == 0, gone.output
    assert not unit.exists()
    assert recorder.calls == [["systemctl", "--user", "disable", "--now", unit.name],
                              ["systemctl", "--user", "daemon-reload"]]
    assert "not installed" in cli.invoke(main, ["service", "status", str(folder)]).output


def test_a_failed_pass_is_recorded_and_shown(tmp_path: Path,
                                             systemd: tuple[Recorder, Path]) -> None:
    folder = a_folder(tmp_path / "Sync")
    state = State(folder)
    try:
        with pytest.raises(OSError), cli_service.recorded(state):
            raise OSError("disk full")
    finally:
        state.close()
    assert cli_service.last_pass(folder)["failed"] == "OSError: disk full"  # type: ignore[index]
    assert "failed: OSError: disk full" in CliRunner().invoke(
        main, ["service", "status", str(folder)]).output


def test_install_refuses_a_folder_without_a_remembered_key(
        systemd: tuple[Recorder, Path], tmp_path: Path) -> None:
    recorder, units = systemd
    folder = a_folder(tmp_path / "Sync", remembered=False)
    done = CliRunner().invoke(main, ["service", "install", str(folder)])
    assert done.exit_code == 2 and "no remembered key" in done.output
    assert recorder.calls == [] and not units.exists()


def test_a_refused_enable_leaves_no_unit_and_one_line(
        systemd: tuple[Recorder, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder, units = systemd
    folder = a_folder(tmp_path / "Sync")

    def no_bus(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        recorder(argv)
        return subprocess.CompletedProcess(list(argv), 1, "", "Failed to connect to bus")

    monkeypatch.setattr(cli_service, "runner", no_bus)
    done = CliRunner().invoke(main, ["service", "install", str(folder)])
    assert done.exit_code == 4
    assert "systemctl --user daemon-reload failed: Failed to connect to bus" in done.output
    assert "Traceback" not in done.output and list(units.iterdir()) == []


def test_the_platform_here_puts_user_units_under_xdg_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux layout")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    here = Platform.here()
    assert here.kind == "systemd" and here.unit_dir == tmp_path / "systemd" / "user"
    assert os.fspath(here.unit_path(Path("/s"))).endswith(".service")
