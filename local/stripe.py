"""localstripe: a stateful fake Stripe server (PyPI `localstripe`), run as
a subprocess on a free port for `make dev` and the tests, so billing runs
through the real `stripe` SDK end to end. Never a hand-written mock.

Its webhooks are configured with `webhook(url, secret)`: localstripe signs
each event as Stripe does (`Stripe-Signature: t=..,v1=..`) and POSTs it,
about a second after the change, to that URL.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from local.services import free_port, wait_for_port

TEST_KEY = "sk_test_sealsync_local"


def localstripe_path() -> str | None:
    here = Path(sys.executable).parent / "localstripe"
    return str(here) if here.exists() else shutil.which("localstripe")


class LocalStripe:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalStripe:
        path = localstripe_path()
        if path is None:
            raise FileNotFoundError("localstripe is not installed (pip install localstripe)")
        self.proc = subprocess.Popen([path, "--port", str(self.port), "--from-scratch"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, 20.0)
        return self

    def _post(self, path: str, data: bytes = b"", method: str = "POST") -> None:
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"content-type":
                                              "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=10):  # noqa: S310 - our own loopback
            pass

    def webhook(self, url: str, secret: str) -> None:
        """Send every event, signed with `secret`, to `url`."""
        from urllib.parse import urlencode

        self._post("/_config/webhooks/sealsync", urlencode({"url": url,
                                                            "secret": secret}).encode())

    def flush(self) -> None:
        self._post("/_config/data", method="DELETE")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None
