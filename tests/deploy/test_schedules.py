"""The deployed schedules are the jobs' schedules: both formats declare one
schedule per job of chalicelib.jobs.SCHEDULES, each invoking the `jobs`
function with {"job": NAME} through a role that may invoke only it."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from chalicelib.jobs import JOBS, SCHEDULES
from deploy import fix_terraform, package, terraform_backoffice

ROOT = Path(__file__).resolve().parents[2]


def _load_sam_merge() -> dict:  # type: ignore[type-arg]
    class Loader(yaml.SafeLoader):
        pass

    return dict(yaml.load(package.render_merge_template(package.names("dev")), Loader))


def test_every_job_has_one_schedule_in_sam() -> None:
    res = _load_sam_merge()["Resources"]
    targets = {json.loads(r["Properties"]["Target"]["Input"])["job"]:
               r["Properties"]["ScheduleExpression"]
               for r in res.values() if r.get("Type") == "AWS::Scheduler::Schedule"}
    assert targets == {job: terraform_backoffice.schedule_expression(every)
                       for job, every in SCHEDULES.items()}
    assert set(SCHEDULES) == set(JOBS)
    role = res["SchedulerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert role == [{"Sid": "InvokeJobsOnly", "Effect": "Allow",
                     "Action": "lambda:InvokeFunction",
                     "Resource": {"Fn::GetAtt": ["Jobs", "Arn"]}}]


def test_every_job_has_one_schedule_in_terraform() -> None:
    got = fix_terraform.resources(package.names("prod"))["resource"]
    schedules = got["aws_scheduler_schedule"]
    assert {json.loads(s["target"]["input"])["job"] for s in schedules.values()} == \
        set(SCHEDULES)
    assert all(s["target"]["arn"] == "${aws_lambda_function.jobs.arn}"
               for s in schedules.values())
    policy = json.loads(got["aws_iam_role_policy"]["scheduler_invoke_jobs"]["policy"])
    assert policy["Statement"][0]["Resource"] == "${aws_lambda_function.jobs.arn}"
