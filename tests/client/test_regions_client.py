"""The client's side of home regions (sealsync_client/api.py): it follows a
421 to the account's home once per call and keeps it, never to an insecure
or missing address, falls back to the folder's server when the home does
not answer, and turns a read-only 503 into its own error. Real HTTP, to
small servers on this machine."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sealsync_client.api import Api, ApiError, HomeUnavailable

Answer = Callable[[], tuple[int, dict[str, Any]]]


class Server:
    """A server answering every POST with `answer()`, counting requests."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                owner.hits += 1
                self.rfile.read(int(self.headers.get("content-length") or 0))
                status, body = owner.answer()
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[Callable[[Answer], Server]]:
    made: list[Server] = []

    def make(answer: Answer) -> Server:
        made.append(Server(answer))
        return made[-1]

    yield make
    for s in made:
        s.close()


def created() -> tuple[int, dict[str, Any]]:
    return 201, {"user_id": "ab" * 16}


def misdirected(home: object) -> Answer:
    return lambda: (421, {"error": "wrong_region", "message": "elsewhere",
                          "region": "us-east-1", **({"home": home} if home else {})})


def test_a_421_is_followed_once_and_the_home_kept(
        servers: Callable[[Answer], Server]) -> None:
    b = servers(created)
    a = servers(misdirected(b.url))
    kept: list[str] = []
    told: list[str] = []
    api = Api(a.url, on_home=kept.append, on_wait=told.append)
    assert api.create_account("cd" * 32, "kdf") == "ab" * 16
    assert (a.hits, b.hits) == (1, 1)
    assert api.base_url == b.url and api.origin_url == a.url and kept == [b.url]
    assert told == [f"this account lives in region us-east-1; using {b.url} from now on"]
    api.create_account("cd" * 32, "kdf")  # later calls go straight home
    assert (a.hits, b.hits) == (1, 2)


@pytest.mark.parametrize("home", ["http://sync.example.com", None, 7, "not a url"])
def test_no_insecure_or_missing_home_is_followed(servers: Callable[[Answer], Server],
                                                 home: object) -> None:
    a = servers(misdirected(home))
    kept: list[str] = []
    api = Api(a.url, on_home=kept.append, on_wait=lambda _: None)
    with pytest.raises(ApiError, match="no usable address") as got:
        api.create_account("cd" * 32, "kdf")
    assert got.value.status == 421 and kept == [] and api.base_url == a.url


def test_two_servers_sending_each_other_on_do_not_loop(
        servers: Callable[[Answer], Server]) -> None:
    urls: dict[str, str] = {}
    a = servers(lambda: misdirected(urls["b"])())
    b = servers(lambda: misdirected(urls["a"])())
    urls.update(a=a.url, b=b.url)
    api = Api(a.url, on_wait=lambda _: None)
    with pytest.raises(ApiError, match="elsewhere") as got:
        api.create_account("cd" * 32, "kdf")
    assert got.value.status == 421 and (a.hits, b.hits) == (1, 1)


def test_an_unreachable_home_falls_back_to_the_folders_server(
        servers: Callable[[Answer], Server]) -> None:
    origin = servers(created)
    api = Api("http://127.0.0.1:9", origin_url=origin.url)  # the remembered home is down
    assert api.create_account("cd" * 32, "kdf") == "ab" * 16
    assert origin.hits == 1 and api.base_url == origin.url


def test_read_only_is_its_own_error_with_the_servers_words(
        servers: Callable[[Answer], Server]) -> None:
    words = ("your home region eu-west-1 is unavailable: files can be read but not "
             "changed until it is back (your local changes are kept)")
    a = servers(lambda: (503, {"error": "read_only", "message": words}))
    with pytest.raises(HomeUnavailable) as got:
        Api(a.url).create_account("cd" * 32, "kdf")
    assert str(got.value) == words and got.value.status == 503
    other = servers(lambda: (503, {"error": "unavailable", "message": "redis"}))
    with pytest.raises(ApiError) as failed:
        Api(other.url).create_account("cd" * 32, "kdf")
    assert not isinstance(failed.value, HomeUnavailable)
