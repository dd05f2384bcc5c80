"""Pairing a new device by a short code (pairing.py) against the real
stack: the enrolled device's offer and the new device's accept meet through
the server's mailbox; a wrong password or a spent code gets nothing."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sealsync_client.api import Api
from sealsync_client.folder import Folder, init_folder
from sealsync_client.pairing import PairingError, accept, offer

from tests.client_e2e.conftest import FAST, PASSPHRASE, settle, tree
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e


def _offering(a: Folder) -> tuple[threading.Thread, list[str], list[BaseException]]:
    """Run the enrolled device's side in a thread; its code lands in `codes`."""
    codes: list[str] = []
    errors: list[BaseException] = []
    shown = threading.Event()

    def show(code: str) -> None:
        codes.append(code)
        shown.set()

    def run() -> None:
        assert a.secret_key is not None
        try:
            offer(a.api, a.config.user_id, a.secret_key, show, wait_s=20, poll_s=0.1)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)
            shown.set()

    t = threading.Thread(target=run)
    t.start()
    assert shown.wait(20)
    return t, codes, errors


def test_a_new_device_joins_with_the_code_and_the_passphrase(
        stack: StackProcess, tmp_path: Path) -> None:
    api = stack.state["api"]
    a = init_folder(tmp_path / "a", api, PASSPHRASE, device_name="a", cost=FAST)
    try:
        t, codes, errors = _offering(a)
        new_api = Api(api)
        paired = accept(new_api, codes[0], wait_s=20, poll_s=0.1)
        t.join(20)
        assert not errors and paired.user_id == a.config.user_id
        assert paired.secret_key == a.secret_key
        with pytest.raises(PairingError):  # used once: never again
            accept(new_api, codes[0], wait_s=1, poll_s=0.1)
        b = init_folder(tmp_path / "b", api, PASSPHRASE, join_user_id=paired.user_id,
                        secret_key=paired.secret_key, cost=FAST)
        try:
            (a.root / "hello.txt").write_text("paired\n")
            settle(a, b)
            assert tree(b) == {"hello.txt": b"paired\n"}
        finally:
            b.close()
    finally:
        a.close()


def test_a_wrong_password_gets_nothing_and_burns_the_code(stack: StackProcess,
                                                          tmp_path: Path) -> None:
    """An attacker who knows the mailbox id but not the 6 digits (the
    server, say) gets one guess, which yields a box it cannot open."""
    api = stack.state["api"]
    a = init_folder(tmp_path / "a", api, PASSPHRASE, device_name="a", cost=FAST)
    try:
        t, codes, _ = _offering(a)
        digits = codes[0][-6:]
        guess = codes[0][:-6] + f"{(int(digits) + 1) % 10**6:06d}"
        with pytest.raises(PairingError, match="mistyped, or someone else used it"):
            accept(Api(api), guess, wait_s=20, poll_s=0.1)
        t.join(20)
        with pytest.raises(PairingError, match="make a new one"):  # the real device: new code
            accept(Api(api), codes[0], wait_s=1, poll_s=0.1)
    finally:
        a.close()


def test_a_malformed_code_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(PairingError, match="looks like"):
        accept(Api("http://127.0.0.1:9"), "not a code")
