"""chalicelib/openapi.json as the tests read it: the document, lookups in it
(operations, `$ref`s, parameters, the path template a URL matches), and
CheckedHTTP, the chalice test client that validates every answer against
the document. Kept beside the other *_support modules so that the route
walks they hold (device, billing, push, pairing) and tests/unit/test_openapi.py
share one reading of the document.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from chalicelib import api

DOC: dict[str, Any] = json.loads(Path(api.__file__).with_name("openapi.json").read_text())
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (`#/components/...`)."""
    while "$ref" in node:
        target: Any = DOC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    # Components ride along so `#/components/schemas/...` resolves.
    return Draft202012Validator({**schema, "components": DOC["components"]})


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    responses = DOC["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path}: {status} is not documented"
    schema: dict[str, Any] = resolve(responses[str(status)])["content"]["application/json"][
        "schema"]
    return schema


def template_of(path: str) -> str:
    bare = path.split("?", 1)[0]
    for template in DOC["paths"]:
        if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), bare):
            return template
    raise AssertionError(f"{bare} matches no documented path")


def param(path: str, method: str, name: str) -> dict[str, Any]:
    for p in DOC["paths"][path][method].get("parameters", []):
        if resolve(p)["name"] == name:
            return resolve(p)
    raise AssertionError(f"{method} {path} has no parameter {name}")


class CheckedHTTP:
    """The chalice test client, checking every response against the document."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seen: set[tuple[str, str, str]] = set()

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: Any = b"") -> Any:
        r = self.inner.request(method, path, headers=headers or {}, body=body)
        template, verb = template_of(path), method.lower()
        schema = response_schema(template, verb, r.status_code)
        got = json.loads(r.body)
        problems = [e.message for e in validator(schema).iter_errors(got)]
        assert not problems, f"{method} {path} -> {r.status_code} {got}: {problems}"
        self.seen.add((template, verb, str(r.status_code)))
        return r

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


class CheckedClient:
    def __init__(self, client: Any) -> None:
        self.http = CheckedHTTP(client.http)


def region_statuses() -> set[tuple[str, str, str]]:
    """What only a multi-region deployment answers (421, and the 503 of a
    home region down or a directory out of reach): driven by
    tests/unit/test_regions.py, left out of the single-region walks."""
    return {(path, method, status) for path, method, op in operations()
            for status, answer in op["responses"].items()
            if answer.get("$ref", "").endswith(("/WrongRegion", "/ReadOnly"))}
