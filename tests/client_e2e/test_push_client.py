"""Push with the real client against the whole local stack: `sealsync watch`
connects by WebSocket, misses nothing across a dropped connection, and no
push payload carries anything but ids, states and numbers."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from sealsync_client.folder import Folder, init_folder
from sealsync_client.push import PushApi, PushChannel, push_info
from websockets.sync.client import connect

from tests.client_e2e.conftest import FAST, PASSPHRASE, tree
from tests.e2e.conftest import REPO, StackProcess

pytestmark = pytest.mark.e2e
WAIT_S = 90  # generous: the machine is shared; nothing here is a timing claim


def connections(stack: StackProcess, user_id: str) -> list[dict[str, Any]]:
    """The WebSocket connections the server has registered for a user."""
    s = stack.state
    ddb = boto3.client("dynamodb", endpoint_url=s["aws_endpoint"], region_name=s["region"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    items = ddb.query(TableName=s["table"], KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": f"N#{user_id}"}})["Items"]
    return [{"id": it["sk"]["S"][2:], "device": it["device"]["S"]} for it in items
            if it["sk"]["S"].startswith("W#")]


def wait_for(check: Any, what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Lines:
    """A subprocess's stderr, read on a thread, searchable while it runs."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._t.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)


def test_watch_reconnects_and_misses_none_of_50_commits_made_while_away(
        stack: StackProcess, devices: tuple[Folder, Folder]) -> None:
    laptop, desktop = devices
    user = laptop.config.user_id
    env = {**os.environ, "PYTHONPATH": str(REPO / "clients"), "SEALSYNC_PASSPHRASE": PASSPHRASE}
    desktop_dir = str(desktop.root)
    desktop.close()  # the watcher opens the folder itself
    watcher = subprocess.Popen([sys.executable, "-m", "sealsync_client", "watch", desktop_dir],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    err = Lines(watcher.stderr)
    engine = laptop.engine()
    try:
        wait_for(lambda: err.count("push: connected"), "the watcher to connect")
        (old,) = wait_for(lambda: connections(stack, user), "its registration")
        # Asleep (stopped) and cut off: the server drops its connection.
        watcher.send_signal(signal.SIGSTOP)
        mgmt = boto3.client("apigatewaymanagementapi", endpoint_url=stack.state["ws_management"],
                            region_name="us-east-1", aws_access_key_id="testing",
                            aws_secret_access_key="testing")
        mgmt.delete_connection(ConnectionId=old["id"])
        wait_for(lambda: not connections(stack, user), "the $disconnect")
        expected = {}
        for i in range(50):  # 50 remote commits while it is away
            rel = f"away/{i:02d}.txt"
            expected[rel] = f"change {i} {secrets.token_hex(4)}\n".encode()
            (laptop.root / rel).parent.mkdir(exist_ok=True)
            (laptop.root / rel).write_bytes(expected[rel])
            report = engine.sync()
            assert report.uploaded == [rel] and not report.errors
        watcher.send_signal(signal.SIGCONT)
        wait_for(lambda: err.count("push: connected") >= 2, "the reconnect")
        wait_for(lambda: all((Path(desktop_dir) / p).is_file() and
                             (Path(desktop_dir) / p).read_bytes() == data
                             for p, data in expected.items()), "every change applied")
        new = connections(stack, user)
        assert [c["device"] for c in new] == [desktop.config.device_id]
        assert new[0]["id"] != old["id"]
    finally:
        watcher.send_signal(signal.SIGCONT)
        watcher.send_signal(signal.SIGINT)
        watcher.wait(30)
    assert watcher.returncode == 0, err.lines
    assert err.count("push: disconnected") >= 1 and err.count("stopped") == 1
    assert not any("Traceback" in line for line in err.lines), err.lines


def test_uploads_need_no_poll_with_push_and_one_without(
        stack: StackProcess, devices: tuple[Folder, Folder]) -> None:
    laptop, _ = devices
    api = laptop.api
    assert isinstance(api, PushApi)
    for i in range(5):  # push off: the one long poll per batch (the pass's 5 files)
        (laptop.root / f"off{i}.txt").write_text(f"off {i}")
    before = api.result_polls
    assert len(laptop.engine().sync().uploaded) == 5
    assert api.result_polls - before == 1
    wake = threading.Event()
    channel = PushChannel(PushApi(api.base_url, api.login, api.token),
                          push_info(api)["websocket_url"], wake).start()
    api.channel = channel
    try:
        wait_for(lambda: channel.connected, "the channel")
        for i in range(5):
            (laptop.root / f"on{i}.txt").write_text(f"on {i}")
        before = api.result_polls
        assert len(laptop.engine().sync().uploaded) == 5
        assert api.result_polls - before == 0
    finally:
        channel.stop()
        api.channel = None


def test_no_push_payload_carries_a_plaintext_marker(stack: StackProcess,
                                                    tmp_path: Path) -> None:
    marker = "SEALSYNC-MARKER-" + secrets.token_hex(6)
    laptop = init_folder(tmp_path / "laptop", stack.state["api"], PASSPHRASE,
                         device_name=f"dev-{marker}", cost=FAST)
    phone = init_folder(tmp_path / "phone", stack.state["api"], PASSPHRASE,
                        device_name=f"phone-{marker}", join_user_id=laptop.config.user_id,
                        cost=FAST, secret_key=laptop.secret_key)
    ws_url = push_info(laptop.api)["websocket_url"]
    heard: list[str] = []
    stop = threading.Event()

    def listen(token: str) -> None:  # as the device whose token it is
        with connect(ws_url, additional_headers={"authorization": f"Bearer {token}"}) as ws:
            while not stop.is_set():
                try:
                    heard.append(str(ws.recv(timeout=0.2)))
                except TimeoutError:
                    continue
    assert laptop.api.token and phone.api.token
    listeners = [threading.Thread(target=listen, args=(t,), daemon=True)
                 for t in (laptop.api.token, phone.api.token)]
    for t in listeners:
        t.start()
    try:
        wait_for(lambda: len(connections(stack, laptop.config.user_id)) == 2, "listeners")
        folder = laptop.root / f"dir-{marker}"
        folder.mkdir()
        for i in range(3):
            (folder / f"{marker}-{i}.txt").write_text(f"{marker} content {i}\n" * 50)
        assert len(laptop.engine().sync().uploaded) == 3
        (folder / f"{marker}-0.txt").write_text(f"{marker} edited\n")
        assert laptop.engine().sync().uploaded
        wait_for(lambda: len(heard) >= 4, "2 batch results and 2 notices")
        phone.engine().sync()
        assert set(tree(phone)) == set(tree(laptop))
    finally:
        stop.set()
        for t in listeners:
            t.join(5)
        laptop.close()
        phone.close()
    allowed = {"type", "batch_id", "status", "counts", "entries", "cursor", "committed_ms"}
    for raw in heard:
        assert marker not in raw and marker.encode().hex() not in raw
        msg = json.loads(raw)
        assert set(msg) <= allowed
        for entry in msg.get("entries", []):  # one verdict per file: ids and numbers only
            assert set(entry) <= {"file_id", "status", "revision", "winner_revision", "reason"}
    kinds = sorted(json.loads(raw)["type"] for raw in heard)
    assert kinds == ["batch"] * 2 + ["changes"] * 2  # one result per pass, not per file
