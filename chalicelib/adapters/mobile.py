"""SNS mobile push: one platform application per platform (APNs, FCM), one
platform endpoint per registered device, data-only messages.

When APNs or FCM reports a token dead, SNS disables its endpoint and a
publish then fails with EndpointDisabled; a deleted endpoint fails with
NotFound. Either way the caller stops pushing to that device until it
registers again (registering re-enables the endpoint with the fresh token).
"""
from __future__ import annotations

import contextlib
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core.notices import Message, mobile_message

# Errors that mean "this endpoint is dead", as opposed to SNS being unwell.
DEAD_ENDPOINT = {"EndpointDisabled", "NotFound", "InvalidParameter", "InvalidParameterValue"}


class NotConfigured(Exception):
    """No platform application is configured for this platform."""


class EndpointDead(Exception):
    """Publishing to this endpoint failed for good: disable it."""


class EndpointTaken(Exception):
    """This push token's endpoint belongs to another (user, device)."""


class Mobile:
    def __init__(self, sns: Any, apps: dict[str, str]) -> None:
        self.sns = sns
        self.apps = apps  # our platform name -> SNS platform application ARN

    def register(self, platform: str, token: str, user_data: str) -> str:
        """Create (or reuse) the device's endpoint, enabled, with this token.

        An endpoint that already exists for the token is reused only if its
        user data names this same user and device: otherwise anyone who
        learned a phone's push token could take over its endpoint, and later
        delete it (EndpointTaken)."""
        app_arn = self.apps.get(platform)
        if not app_arn:
            raise NotConfigured(platform)
        try:
            # New, or the existing endpoint with identical attributes (the
            # same user data: ours already).
            arn = str(self.sns.create_platform_endpoint(
                PlatformApplicationArn=app_arn, Token=token,
                CustomUserData=user_data)["EndpointArn"])
        except ClientError as exc:
            # The token already has an endpoint with other attributes (e.g.
            # another user data): AWS names its ARN only in the message.
            msg = str(exc.response.get("Error", {}).get("Message", ""))
            if "already exists" not in msg or "Endpoint " not in msg:
                raise
            arn = msg.split("Endpoint ", 1)[1].split(" ", 1)[0]
            attrs = self.sns.get_endpoint_attributes(EndpointArn=arn).get("Attributes", {})
            if attrs.get("CustomUserData") != user_data:
                raise EndpointTaken(arn) from None
        attrs = self.sns.get_endpoint_attributes(EndpointArn=arn).get("Attributes", {})
        if attrs.get("Token") != token or str(attrs.get("Enabled")).lower() != "true":
            self.sns.set_endpoint_attributes(EndpointArn=arn, Attributes={
                "Token": token, "Enabled": "true", "CustomUserData": user_data})
        return arn

    def publish(self, platform: str, endpoint_arn: str, message: Message) -> None:
        """Send a data-only message; EndpointDead if the endpoint is gone."""
        try:
            self.sns.publish(TargetArn=endpoint_arn, MessageStructure="json",
                             Message=mobile_message(platform, message))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in DEAD_ENDPOINT:
                raise EndpointDead(endpoint_arn) from exc
            raise

    def disable(self, endpoint_arn: str) -> None:
        """Best effort: mark the endpoint disabled in SNS too."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self.sns.set_endpoint_attributes(EndpointArn=endpoint_arn,
                                             Attributes={"Enabled": "false"})

    def delete(self, endpoint_arn: str) -> None:
        with contextlib.suppress(ClientError, BotoCoreError):
            self.sns.delete_endpoint(EndpointArn=endpoint_arn)
