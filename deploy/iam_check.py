"""The least-privilege rule every policy we ship must pass.

  - no wildcard in any action (`*` or `?`), no NotAction / NotResource;
  - no `*` resource or principal;
  - in an ARN, the partition, service, region and account are never
    wildcarded, and a wildcard may appear only in the last path segment,
    after at least two fixed segments (`bucket/staging/*` passes,
    `bucket/*` does not): object keys, log streams and push endpoint ids
    cannot be known in advance, whole buckets or tables can.

Policies come from several places (IAM roles in SAM and Terraform, queue
policies, .chalice/policy-*.json); `policies_in` finds them in a template.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

WILD = ("*", "?")


def _text(value: Any) -> str | None:
    """A resource as text: a plain string or the string in Fn::Sub; None for
    Ref / GetAtt, which name one resource of the template (never a wildcard)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else str(sub[0])
    return None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resource_problem(resource: str) -> str | None:
    if resource.strip() in WILD:
        return "resource is a bare wildcard"
    if not any(w in resource for w in WILD):
        return None
    parts = resource.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return f"wildcard in something that is not a full ARN: {resource}"
    if any(w in part for part in parts[1:5] for w in WILD):
        return f"wildcard in the partition, service, region or account: {resource}"
    segments = parts[5].split("/")
    if any(w in seg for seg in segments[:-1] for w in WILD):
        return f"wildcard before the last path segment: {resource}"
    if len([s for s in segments[:-1] if s]) < 2:
        return f"wildcard too close to the root (need two fixed segments): {resource}"
    return None


def problems(document: Any, where: str = "policy") -> list[str]:
    """Every breach of the rule in one policy document."""
    if isinstance(document, str):
        document = json.loads(document)
    found: list[str] = []
    for i, st in enumerate(_as_list(document.get("Statement", []))):
        at = f"{where} statement {st.get('Sid') or i}"
        for key in ("NotAction", "NotResource", "NotPrincipal"):
            if key in st:
                found.append(f"{at}: {key} is not allowed")
        for action in _as_list(st.get("Action", [])):
            if not isinstance(action, str) or any(w in action for w in WILD):
                found.append(f"{at}: wildcard action {action!r}")
        principal = st.get("Principal")
        if principal == "*" or (isinstance(principal, dict) and "*" in _as_list(
                principal.get("AWS", []))):
            found.append(f"{at}: wildcard principal")
        for resource in _as_list(st.get("Resource", [])):
            text = _text(resource)
            problem = resource_problem(text) if text is not None else None
            if problem:
                found.append(f"{at}: {problem}")
    return found


def policies_in(template: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """(location, document) for every IAM policy document in a template
    (SAM / CloudFormation or Terraform JSON), at any depth."""
    if isinstance(template, dict):
        for key, value in template.items():
            here = f"{where}/{key}"
            if key in ("PolicyDocument", "AssumeRolePolicyDocument") or (
                    key in ("policy", "assume_role_policy") and isinstance(value, str)
                    and value.lstrip().startswith("{")):
                yield here, json.loads(value) if isinstance(value, str) else value
            elif key == "redrive_policy":
                continue
            else:
                yield from policies_in(value, here)
    elif isinstance(template, list):
        for i, value in enumerate(template):
            yield from policies_in(value, f"{where}[{i}]")
