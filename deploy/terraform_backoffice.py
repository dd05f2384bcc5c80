"""The back office in Terraform, the same shapes as deploy/sam-merge.yaml:
EventBridge Scheduler schedules invoking the `jobs` function through a role
that may invoke only it, and SES bounces and complaints through a
configuration set and an SNS topic to the `mail_notices` function.
Merged into sealsync-resources.tf.json by fix_terraform.resources."""
from __future__ import annotations

import json
from typing import Any

from chalicelib.jobs import SCHEDULES

ACCOUNT = "${data.aws_caller_identity.chalice.account_id}"
JOBS_ARN = "${aws_lambda_function.jobs.arn}"
# EventBridge Scheduler's expressions for chalicelib.jobs.SCHEDULES
EXPRESSIONS = {"monthly": "cron(5 0 1 * ? *)", 3600: "rate(1 hour)", 86400: "rate(1 day)"}


def schedule_expression(every: int | str) -> str:
    return EXPRESSIONS[every]


def resources(app: str, stage: str) -> dict[str, Any]:
    assume = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}]}
    invoke = {"Version": "2012-10-17", "Statement": [{
        "Sid": "InvokeJobsOnly", "Effect": "Allow", "Action": "lambda:InvokeFunction",
        "Resource": JOBS_ARN}]}
    topic_policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "SesPublishesNotices", "Effect": "Allow",
        "Principal": {"Service": "ses.amazonaws.com"}, "Action": "sns:Publish",
        "Resource": "${aws_sns_topic.mail_notices.arn}",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}]}
    schedules = {}
    for job, every in SCHEDULES.items():
        monthly = every == "monthly"
        schedules[job] = {
            "name": f"{app}-{stage}-{job}".replace("_", "-"),
            "schedule_expression": schedule_expression(every),
            "schedule_expression_timezone": "UTC",
            "flexible_time_window": ({"mode": "OFF"} if monthly else
                                     {"mode": "FLEXIBLE", "maximum_window_in_minutes": 15}),
            "target": {"arn": JOBS_ARN, "role_arn": "${aws_iam_role.scheduler.arn}",
                       "input": json.dumps({"job": job})}}
    return {
        "aws_iam_role": {"scheduler": {"name": f"{app}-{stage}-scheduler",
                                       "assume_role_policy": json.dumps(assume)}},
        "aws_iam_role_policy": {"scheduler_invoke_jobs": {
            "name": "invoke-jobs", "role": "${aws_iam_role.scheduler.id}",
            "policy": json.dumps(invoke)}},
        "aws_scheduler_schedule": schedules,
        "aws_sns_topic": {"mail_notices": {"name": f"{app}-{stage}-mail-notices",
                                           "kms_master_key_id": "alias/aws/sns"}},
        "aws_sns_topic_policy": {"mail_notices": {
            "arn": "${aws_sns_topic.mail_notices.arn}", "policy": json.dumps(topic_policy)}},
        "aws_sesv2_configuration_set": {"mail": {"configuration_set_name": f"{app}-{stage}"}},
        "aws_sesv2_configuration_set_event_destination": {"mail_notices": {
            "configuration_set_name": "${aws_sesv2_configuration_set.mail.configuration_set_name}",
            "event_destination_name": "bounces-and-complaints",
            "event_destination": {"enabled": True,
                                  "matching_event_types": ["BOUNCE", "COMPLAINT"],
                                  "sns_destination": {
                                      "topic_arn": "${aws_sns_topic.mail_notices.arn}"}}}},
        "aws_sns_topic_subscription": {"mail_notices": {
            "topic_arn": "${aws_sns_topic.mail_notices.arn}", "protocol": "lambda",
            "endpoint": "${aws_lambda_function.mail_notices.arn}"}},
        "aws_lambda_permission": {"mail_notices_sns": {
            "action": "lambda:InvokeFunction",
            "function_name": "${aws_lambda_function.mail_notices.function_name}",
            "principal": "sns.amazonaws.com",
            "source_arn": "${aws_sns_topic.mail_notices.arn}"}},
    }
