"""The Lambda role's IAM policy for one stage, least privilege, generated
from the stage's names in .chalice/config.json.

Every action is named (no `*`). A resource is never `*`; a `*` appears only
as the last part of an ARN under a fixed prefix (objects under `staging/`,
a function's log streams, a push endpoint under our app), because object
keys, log streams and endpoint ids are not known in advance. ARNs carry
`${AWS::Partition}`, `${AWS::Region}`, `${AWS::AccountId}` and `${WebsocketAPI}`
(the WebSocket API's id, from the template chalice generates); the packager
turns them into Fn::Sub (SAM) or data-source interpolations (Terraform).

    python -m deploy.policy            # write .chalice/policy-{stage}.json
    python -m deploy.policy --check    # fail if they are out of date
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".chalice" / "config.json"
ARN = "arn:${AWS::Partition}"
AT = "${AWS::Region}:${AWS::AccountId}"
# Chalice names every function "{app}-{stage}-{handler}" (the API handler
# "{app}-{stage}"); these are all the app's functions, websocket ones included.
FUNCTIONS = ("", "-bearer", "-on_commit_queue", "-sweep_stragglers",
             "-websocket_connect", "-websocket_message", "-websocket_disconnect",
             "-jobs", "-mail_notices")
PUSH_PLATFORMS = ("APNS", "APNS_SANDBOX", "GCM")


def stage_env(stage: str, config: dict[str, Any] | None = None) -> dict[str, str]:
    """The environment Lambda gets for `stage`: global, then stage values."""
    cfg = config or json.loads(CONFIG.read_text())
    if stage not in cfg["stages"]:
        raise SystemExit(f"no stage {stage!r} in {CONFIG}")
    return {**cfg.get("environment_variables", {}),
            **cfg["stages"][stage].get("environment_variables", {})}


def _statement(sid: str, actions: list[str], resources: list[str],
               **extra: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions),
            "Resource": resources, **extra}


def _secret_resource(ref: str) -> tuple[str, str]:
    source, name = ref.split(":", 1)
    if source == "ssm":
        return "ssm:GetParameter", f"{ARN}:ssm:{AT}:parameter/{name.lstrip('/')}"
    # Secrets Manager appends a random 6-character suffix to a secret's ARN.
    return ("secretsmanager:GetSecretValue",
            f"{ARN}:secretsmanager:{AT}:secret:{name}-??????")


def _mail_domain(env: dict[str, str]) -> str:
    """The domain of SEALSYNC_MAIL_FROM ("Name <a@domain>"): the SES identity."""
    sender = env.get("SEALSYNC_MAIL_FROM", "no-reply@sealsync.invalid")
    return sender.rsplit("@", 1)[-1].rstrip(">").strip()


def policy(app: str, stage: str, env: dict[str, str], api_stage: str = "api",
           stage_cfg: dict[str, Any] | None = None) -> dict[str, Any]:
    bucket, table, queue = env["SEALSYNC_BUCKET"], env["SEALSYNC_TABLE"], env["SEALSYNC_QUEUE"]
    obj = f"{ARN}:s3:::{bucket}"
    table_arn = f"{ARN}:dynamodb:{AT}:table/{table}"
    statements = [
        _statement("LogGroups", ["logs:CreateLogGroup"],
                   [f"{ARN}:logs:{AT}:log-group:/aws/lambda/{app}-{stage}{f}"
                    for f in FUNCTIONS]),
        _statement("Logs", ["logs:CreateLogStream", "logs:PutLogEvents"],
                   [f"{ARN}:logs:{AT}:log-group:/aws/lambda/{app}-{stage}{f}:*"
                    for f in FUNCTIONS]),
        # Presigned PUTs are signed with this role: chunks, packs and staging only.
        # Manifests are written by the commit handler's server-side copy.
        _statement("ObjectsReadWrite", ["s3:GetObject", "s3:PutObject"],
                   [f"{obj}/staging/*", f"{obj}/chunks/*", f"{obj}/packs/*",
                    f"{obj}/manifests/*"]),
        _statement("StagingDelete", ["s3:DeleteObject"], [f"{obj}/staging/*"]),
        # The `gc` job deletes unreferenced chunk objects and packs (chalicelib/gc.py),
        # conditioned on the ETag it listed; never manifests.
        _statement("GarbageDelete", ["s3:DeleteObject"], [f"{obj}/chunks/*", f"{obj}/packs/*"]),
        # ListBucket makes HEAD of an absent chunk a 404 rather than a 403
        # (the commit handler must tell "missing" from "denied"), and lets the
        # sweeper list staging/ and the gc job chunks/ and packs/ only.
        _statement("ListStagingOnly", ["s3:ListBucket"], [obj]),
        _statement("Table", ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem",
                             "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem",
                             "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",
                             "dynamodb:UpdateItem"],
                   [table_arn, f"{table_arn}/index/pending"]),
        _statement("CommitQueue", ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage",
                                   "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
                   [f"{ARN}:sqs:{AT}:{queue}"]),
        # Mobile push through SNS platform applications named "{app}-{stage}".
        _statement("PushEndpoints", ["sns:CreatePlatformEndpoint"],
                   [f"{ARN}:sns:{AT}:app/{p}/{app}-{stage}" for p in PUSH_PLATFORMS]),
        _statement("PushPublish", ["sns:DeleteEndpoint", "sns:GetEndpointAttributes",
                                   "sns:Publish", "sns:SetEndpointAttributes"],
                   [f"{ARN}:sns:{AT}:endpoint/{p}/{app}-{stage}/*"
                    for p in PUSH_PLATFORMS]),
        # Pushing to WebSocket connections of this stage's WebSocket API only.
        # Account mail (docs/OPERATIONS.md "Billing"): from the verified
        # sender identity only.
        _statement("AccountMail", ["ses:SendEmail"],
                   [f"{ARN}:ses:{AT}:identity/{_mail_domain(env)}",
                    f"{ARN}:ses:{AT}:configuration-set/{app}-{stage}"]),
        _statement("WebSocketPush", ["execute-api:ManageConnections"],
                   [f"{ARN}:execute-api:{AT}:${{WebsocketAPI}}/{api_stage}/{verb}/@connections/*"
                    for verb in ("POST", "DELETE")]),
    ]
    # s3:prefix narrows ListBucket to staging/ when a prefix is given; a HEAD
    # (no prefix in the request) is still answered 404 for an absent key.
    # ... and, for the `gc` job, the user prefixes under chunks/ and packs/.
    statements[5]["Condition"] = {"StringLikeIfExists": {
        "s3:prefix": ["staging/*", "chunks/*", "packs/*"]}}
    secrets: dict[str, list[str]] = {}
    for name in ("SEALSYNC_TOKEN_SECRET_REF", "SEALSYNC_REDIS_TOKEN_REF",
                 "SEALSYNC_STRIPE_KEY_REF", "SEALSYNC_STRIPE_WEBHOOK_SECRET_REF"):
        if env.get(name):
            action, resource = _secret_resource(env[name])
            secrets.setdefault(action, []).append(resource)
    for action, resources in sorted(secrets.items()):
        statements.append(_statement("Secrets" + action.split(":")[0].title(), [action],
                                     resources))
    from . import regions  # home regions: the directory and the replicas kept here

    statements += regions.policy_statements(regions.plan(stage, stage_cfg or {}, env), env,
                                            ARN, "${AWS::AccountId}")
    return {"Version": "2012-10-17", "Statement": statements}


def render(stage: str) -> str:
    cfg = json.loads(CONFIG.read_text())
    api_stage = cfg["stages"][stage].get("api_gateway_stage", "api")
    doc = policy(cfg["app_name"], stage, stage_env(stage, cfg), api_stage, cfg["stages"][stage])
    return json.dumps(doc, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = ap.parse_args(argv)
    cfg = json.loads(CONFIG.read_text())
    stale = []
    for stage, conf in cfg["stages"].items():
        path = CONFIG.parent / conf.get("iam_policy_file", f"policy-{stage}.json")
        text = render(stage)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
    if stale:
        print("out of date (run python -m deploy.policy):", *stale, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
