"""`make package`: both formats are produced for every stage, validate
offline (cfn-lint; terraform when it and its provider are installed),
declare the same resources the local stack creates, enable partial batch
failures, and ship only least-privilege policies."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy import fix_terraform, iam_check, package, policy
from local.resources import create_table

ROOT = Path(__file__).resolve().parents[2]
STAGES = tuple(json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("dist")
    made: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        paths = package.package(stage, out)
        tf_dir = paths["terraform"].parent
        made[stage] = {
            "sam_path": paths["sam"], "sam": package.load(paths["sam"]),
            "tf_dir": tf_dir, "tf": package.load(paths["terraform"]),
            "tf_extra": package.load(tf_dir / "sealsync-resources.tf.json"),
            "names": package.names(stage),
        }
    return made


def _table_shape_from_local_stack() -> dict[str, Any]:
    calls: dict[str, Any] = {}

    class Recorder:
        def create_table(self, **kw: Any) -> None:
            calls["table"] = kw

        def update_time_to_live(self, **kw: Any) -> None:
            calls["ttl"] = kw["TimeToLiveSpecification"]

    create_table(Recorder(), "t")
    return calls


# -- SAM ----------------------------------------------------------------------
@pytest.mark.parametrize("stage", STAGES)
def test_sam_template_passes_cfn_lint(built: dict[str, dict[str, Any]], stage: str) -> None:
    lint = Path(sys.executable).parent / "cfn-lint"
    done = subprocess.run([str(lint), str(built[stage]["sam_path"])],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("stage", STAGES)
def test_sam_declares_the_data_and_event_plumbing(built: dict[str, dict[str, Any]],
                                                  stage: str) -> None:
    res, n = built[stage]["sam"]["Resources"], built[stage]["names"]
    bucket = res["DataBucket"]["Properties"]
    assert bucket["BucketName"] == n.bucket
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert (rules["expire-staging"]["Prefix"], rules["expire-staging"]["ExpirationInDays"]) == (
        "staging/", 1)
    [note] = bucket["NotificationConfiguration"]["QueueConfigurations"]
    assert note["Queue"] == {"Fn::GetAtt": ["CommitQueue", "Arn"]}
    assert note["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "staging/"}]
    queue = res["CommitQueue"]["Properties"]
    assert queue["QueueName"] == n.queue
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["CommitDeadLetterQueue", "Arn"]}
    assert queue["VisibilityTimeout"] >= 6 * res["OnCommitQueue"]["Properties"]["Timeout"]
    [send] = res["CommitQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert send["Principal"] == {"Service": "s3.amazonaws.com"}
    assert n.bucket in send["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"]

    table = res["Table"]["Properties"]
    local = _table_shape_from_local_stack()
    assert table["TableName"] == n.table
    for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes"):
        assert table[key] == local["table"][key], key
    assert table["TimeToLiveSpecification"] == {
        "AttributeName": local["ttl"]["AttributeName"], "Enabled": True}
    assert table["BillingMode"] == local["table"]["BillingMode"]


@pytest.mark.parametrize("stage", STAGES)
def test_one_commit_path_with_partial_batch_failures(built: dict[str, dict[str, Any]],
                                                     stage: str) -> None:
    res = built[stage]["sam"]["Resources"]
    handlers = {r["Properties"].get("Handler") for r in res.values()
                if r["Type"] == "AWS::Serverless::Function"}
    assert "app.on_commit_queue" in handlers and "app.on_staging_object" not in handlers
    [event] = res["OnCommitQueue"]["Properties"]["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    concurrency = built[stage]["names"].commit_concurrency
    assert event["Properties"]["ScalingConfig"] == {"MaximumConcurrency": concurrency}
    assert built[stage]["names"].queue in event["Properties"]["Queue"]["Fn::Sub"]

    tf = built[stage]["tf"]["resource"]
    assert "on_staging_object" not in tf["aws_lambda_function"]
    assert "aws_s3_bucket_notification" not in tf  # chalice's direct S3 -> Lambda
    [mapping] = tf["aws_lambda_event_source_mapping"].values()
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["event_source_arn"] == "${aws_sqs_queue.commit.arn}"
    assert mapping["scaling_config"] == {"maximum_concurrency": concurrency}


# -- Terraform -------------------------------------------------------------------
def _interpolations(s: str) -> list[str]:
    """The top-level ${...} expressions in `s` (nesting allowed); raises on
    an unterminated one."""
    found, i = [], s.find("${")
    while i >= 0:
        depth, j = 0, i
        while j < len(s):
            if s.startswith("${", j) or (s[j] == "{" and depth):
                depth, j = depth + 1, j + (2 if s.startswith("${", j) else 1)
                continue
            if s[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if depth:
            raise AssertionError(f"unterminated interpolation: {s[i:i + 80]}")
        found.append(s[i + 2:j])
        i = s.find("${", j + 1)
    return found


NAMED = re.compile(r"\b(data\.[a-z0-9_]+\.[A-Za-z0-9_-]+|aws_[a-z0-9_]+\.[A-Za-z0-9_-]+|"
                   r"local\.[a-z0-9_]+)")


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


@pytest.mark.parametrize("stage", STAGES)
def test_terraform_targets_current_terraform_and_provider(
        built: dict[str, dict[str, Any]], stage: str) -> None:
    tf = built[stage]["tf"]
    assert tf["terraform"] == {"required_version": ">= 1.5", "required_providers": {
        "aws": {"source": "hashicorp/aws", "version": ">= 6.0, < 7.0"}}}
    text = json.dumps(tf)
    assert "null_data_source" not in text and "aws_region.chalice.name" not in text
    assert all("stage_name" not in d for d in tf["resource"]["aws_api_gateway_deployment"]
               .values())
    stage_res = tf["resource"]["aws_api_gateway_stage"]["rest_api"]
    assert stage_res["deployment_id"] == "${aws_api_gateway_deployment.rest_api.id}"
    assert tf["output"]["EndpointURL"]["value"] == "${aws_api_gateway_stage.rest_api.invoke_url}"


@pytest.mark.parametrize("stage", STAGES)
def test_every_terraform_reference_is_declared(built: dict[str, dict[str, Any]],
                                               stage: str) -> None:
    """What `terraform validate` checks first, without the provider: every
    ${...} is balanced and names a resource, data source or local that exists
    in the two files (the policy JSON strings included)."""
    docs = [built[stage]["tf"], built[stage]["tf_extra"]]
    declared = {f"{kind}.{name}" for d in docs for kind, items in d.get("resource", {}).items()
                for name in items}
    declared |= {f"data.{kind}.{name}" for d in docs for kind, items in d.get("data", {}).items()
                 for name in items}
    declared |= {f"local.{name}" for d in docs for name in d.get("locals", {})}
    seen = set()
    for s in (s for d in docs for s in _strings(d)):
        for expr in _interpolations(s):
            for ref in NAMED.findall(expr):
                seen.add(ref)
                assert ref in declared, f"{ref} is not declared ({expr})"
    assert "aws_sqs_queue.commit" in seen and "aws_api_gateway_stage.rest_api" in seen


@pytest.mark.parametrize("stage", STAGES)
def test_terraform_validate(built: dict[str, dict[str, Any]], stage: str,
                            tmp_path: Path) -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed; the offline checks above still ran")
    work = tmp_path / "tf"
    shutil.copytree(built[stage]["tf_dir"], work)
    done = subprocess.run([terraform, "providers", "-no-color"], cwd=work,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr  # parses, constraints well-formed
    assert ">= 6.0.0, < 7.0.0" in done.stdout
    init = subprocess.run([terraform, "init", "-backend=false", "-input=false", "-no-color"],
                          cwd=work, capture_output=True, text=True, timeout=300)
    if init.returncode != 0:
        why = next((line.strip() for line in init.stderr.splitlines()
                    if "could not connect" in line or "Error" in line), "init failed")
        pytest.skip("terraform is installed but `terraform init` could not install the "
                    f"AWS provider (no network to its registry?): {why}")
    done = subprocess.run([terraform, "validate", "-no-color"], cwd=work,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


# -- IAM: least privilege -------------------------------------------------------------
def _all_policies(built: dict[str, dict[str, Any]]) -> list[tuple[str, Any]]:
    found = []
    for stage, b in built.items():
        for name in ("sam", "tf", "tf_extra"):
            found += [(f"{stage}/{name}{where}", doc)
                      for where, doc in iam_check.policies_in(b[name])]
    merge = package.render_merge_template(package.names(STAGES[0]))
    import yaml

    found += list(iam_check.policies_in(yaml.safe_load(merge), "sam-merge.yaml"))
    for path in sorted((ROOT / ".chalice").glob("policy-*.json")):
        found.append((path.name, json.loads(path.read_text())))
    return found


def test_no_wildcard_action_or_resource_in_any_shipped_policy(
        built: dict[str, dict[str, Any]]) -> None:
    found = _all_policies(built)
    # every role of both formats, both stages, the queue policies, the files
    roles = [w for w, _ in found if "/sam/" in w and "Role/" in w and "AssumeRole" not in w]
    assert len(roles) >= 4 * len(STAGES)
    assert sum("aws_iam_role_policy" in w for w, _ in found) >= 4 * len(STAGES)
    assert sum(w.startswith("policy-") for w, _ in found) == len(STAGES)
    breaches = [p for where, doc in found for p in iam_check.problems(doc, where)]
    assert breaches == []


@pytest.mark.parametrize(("resource", "ok"), [
    ("*", False),
    ("arn:aws:s3:::bucket/*", False),
    ("arn:aws:s3:::bucket/staging/*", True),
    ("arn:aws:s3:::*", False),
    ("arn:aws:dynamodb:*:123:table/t", False),
    ("arn:aws:logs:us-east-1:123:log-group:/aws/lambda/f:*", True),
    ("arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:q", True),
    ("arn:aws:sqs:us-east-1:123:*", False),
    ("arn:aws:s3:::bucket/*/x", False),
])
def test_the_wildcard_rule_itself(resource: str, ok: bool) -> None:
    doc = {"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": resource}]}
    assert (iam_check.problems(doc) == []) is ok
    star = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}]}
    assert iam_check.problems(star)


def test_policy_files_are_generated_from_config_and_name_only_our_resources() -> None:
    assert policy.main(["--check"]) == 0, "run .venv/bin/python -m deploy.policy"
    for stage in STAGES:
        n = package.names(stage)
        text = (ROOT / ".chalice" / f"policy-{stage}.json").read_text()
        for name in (n.bucket, n.table, n.queue):
            assert name in text
        s3 = {r for st in json.loads(text)["Statement"] for r in st["Resource"]
              if ":s3:::" in r}
        replicas = {r for r in s3 if f":::{n.bucket}" not in r}  # kept for other regions
        assert {r.split(n.bucket, 1)[1] for r in s3 - replicas} == {
            "", "/staging/*", "/chunks/*", "/packs/*", "/manifests/*"}
        kept = n.regions.kept_buckets if n.regions else ()
        assert {r.split(":::", 1)[1] for r in replicas} == {
            f"{b}{suffix}" for b in kept for suffix in ("", "/chunks/*", "/packs/*",
                                                        "/manifests/*")}


def test_the_websocket_statement_binds_to_the_generated_api() -> None:
    """When the app has websocket handlers (chalice then generates the
    WebSocket API), ManageConnections is scoped to that API; without one
    the statement is dropped rather than left dangling."""
    doc = policy.policy("sealsync", "dev", policy.stage_env("dev"))
    sam = {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {
        "Policies": [{"PolicyDocument": json.loads(json.dumps(doc))}]}}}}
    from deploy import fix_sam

    without = fix_sam.fix(json.loads(json.dumps(sam)), "sealsync", "dev")
    assert "WebSocketPush" not in json.dumps(without)
    sam["Resources"]["WebsocketAPI"] = {"Type": "AWS::ApiGatewayV2::Api"}
    with_ws = fix_sam.fix(sam, "sealsync", "dev")
    [st] = [s for s in with_ws["Resources"]["R"]["Properties"]["Policies"][0]
            ["PolicyDocument"]["Statement"] if s["Sid"] == "WebSocketPush"]
    assert st["Resource"][0]["Fn::Sub"].endswith(":${WebsocketAPI}/api/POST/@connections/*")
    tf = fix_terraform.fix_policy(json.dumps(doc), has_websocket_api=True)
    assert "${aws_apigatewayv2_api.websocket_api.id}/api/POST/@connections/*" in tf
    assert "WebSocketPush" not in fix_terraform.fix_policy(json.dumps(doc), False)


def _log_resources(statements: list[dict[str, Any]]) -> set[str]:
    found = set()
    for st in statements:
        if "logs:PutLogEvents" in st["Action"]:
            for r in st["Resource"]:
                found.add(r["Fn::Sub"] if isinstance(r, dict) else r)
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_may_write_its_own_logs(built: dict[str, dict[str, Any]],
                                               stage: str) -> None:
    """No wildcard log ARNs means each function's name must be known: SAM
    gets chalice's names, and each role names its function's log group."""
    res = built[stage]["sam"]["Resources"]
    for logical_id, fn in res.items():
        if fn["Type"] != "AWS::Serverless::Function":
            continue
        name = fn["Properties"]["FunctionName"]
        role = res[fn["Properties"]["Role"]["Fn::GetAtt"][0]]
        statements = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        assert any(r.endswith(f":log-group:/aws/lambda/{name}:*")
                   for r in _log_resources(statements)), logical_id
    tf = built[stage]["tf"]["resource"]
    for key, fn in tf["aws_lambda_function"].items():
        role_name = fn["role"].split(".")[1]
        statements = json.loads(tf["aws_iam_role_policy"][role_name]["policy"])["Statement"]
        assert any(r.endswith(f":log-group:/aws/lambda/{fn['function_name']}:*")
                   for r in _log_resources(statements)), key
    sam_names = {f["Properties"]["FunctionName"] for f in res.values()
                 if f["Type"] == "AWS::Serverless::Function"}
    assert sam_names == {f["function_name"] for f in tf["aws_lambda_function"].values()}


# -- home regions (deploy/regions.py; docs/OPERATIONS.md "Regions") ----------
@pytest.mark.parametrize("stage", STAGES)
def test_a_multi_region_stage_replicates_committed_objects_and_its_table(
        built: dict[str, dict[str, Any]], stage: str) -> None:
    res, n = built[stage]["sam"]["Resources"], built[stage]["names"]
    tf = built[stage]["tf_extra"]["resource"]
    bucket = res["DataBucket"]["Properties"]
    if n.regions is None:  # a single-region stage: none of it
        assert "ReplicationConfiguration" not in bucket and "ReplicationRole" not in res
        assert res["Table"]["Type"] == "AWS::DynamoDB::Table"
        assert "aws_s3_bucket_replication_configuration" not in tf
        return
    p = n.regions
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = bucket["ReplicationConfiguration"]["Rules"]
    assert [r["Filter"]["Prefix"] for r in rules] == ["chunks/", "manifests/", "packs/"]
    assert {r["Destination"]["Bucket"] for r in rules} == {f"arn:aws:s3:::{p.replica_bucket}"}
    tf_rules = tf["aws_s3_bucket_replication_configuration"]["data"]["rule"]
    assert [r["filter"]["prefix"] for r in tf_rules] == ["chunks/", "manifests/", "packs/"]
    # the replication role reads only those prefixes here and writes only there
    [doc] = [pol["PolicyDocument"] for pol in
             res["ReplicationRole"]["Properties"]["Policies"]]
    reads = {r for st in doc["Statement"] if st["Sid"] == "SourceVersions"
             for r in st["Resource"]}
    writes = {r for st in doc["Statement"] if st["Sid"] == "ReplicaWrites"
              for r in st["Resource"]}
    assert reads == {f"arn:aws:s3:::{n.bucket}/{x}/*" for x in ("chunks", "manifests", "packs")}
    assert writes == {f"arn:aws:s3:::{p.replica_bucket}/{x}/*"
                      for x in ("chunks", "manifests", "packs")}
    assert not any("staging" in r for r in reads | writes)
    assert iam_check.problems(doc) == []
    # the table is a global table with a replica in the partner region
    table = res["Table"]
    assert table["Type"] == "AWS::DynamoDB::GlobalTable"
    assert [r["Region"] for r in table["Properties"]["Replicas"]] == [p.here,
                                                                      p.replica_region]
    assert tf["aws_dynamodb_table"]["main"]["replica"] == [
        {"region_name": p.replica_region, "point_in_time_recovery": True}]
    # the replica bucket kept here for the partner, versioned and private
    kept = [r["Properties"] for k, r in res.items() if k.startswith("KeptReplicaBucket")]
    assert [k["BucketName"] for k in kept] == list(p.kept_buckets) != []
    assert all(k["VersioningConfiguration"] == {"Status": "Enabled"} for k in kept)
    # the directory lives in its region's stack, replicated to every region
    directory = res.get("DirectoryTable")
    assert (directory is not None) == (p.directory is not None)
    if directory is not None:
        assert [r["Region"] for r in directory["Properties"]["Replicas"]] == list(
            p.all_regions)
