"""Issue 15, low findings on the server: another account cannot adopt (and
later delete) a device's SNS endpoint, and bearer tokens parse strictly
(one token has exactly one spelling)."""
from __future__ import annotations

import base64

import boto3
import pytest

from chalicelib.core import tokens
from chalicelib.core.errors import Unauthorized
from local.moto_patches import sns_endpoint_user_data
from tests.harness import Harness
from tests.unit.test_push import sns_apps  # noqa: F401  (the fixture)

SECRET = b"k" * 32


def test_another_account_cannot_adopt_or_delete_a_devices_endpoint(
        fast: Harness, sns_apps: dict[str, str]) -> None:  # noqa: F811
    sns_endpoint_user_data()  # as AWS: the endpoint's attributes name its user data
    victim, mallory = fast.signup(), fast.signup()
    token = {"platform": "apns", "token": "c0ffee" * 10}
    assert fast.post("/v1/push/registrations", token, victim).status_code == 201
    arn = fast.rt.registry.get_mobile(victim.user_id, victim.device_id).endpoint_arn
    taken = fast.post("/v1/push/registrations", token, mallory)
    assert taken.status_code == 409 and "another device" in taken.json_body["message"]
    assert fast.rt.registry.get_mobile(mallory.user_id, mallory.device_id) is None
    fast.delete("/v1/push/registrations", mallory)
    sns = boto3.client("sns", region_name="us-east-1")
    attrs = sns.get_endpoint_attributes(EndpointArn=arn)["Attributes"]
    assert attrs["CustomUserData"] == f"{victim.user_id}:{victim.device_id}"
    assert attrs["Enabled"] == "true"
    # the owner itself registers again (same token) without trouble
    assert fast.post("/v1/push/registrations", token, victim).status_code == 201


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _variants(token: str) -> list[str]:
    """Other spellings of the same bytes, and decodable junk around them."""
    v, payload, mac = token.split(".")
    last = mac[-1]
    # 32 bytes -> 43 chars: the last char carries 4 padding bits; flipping them
    # decodes to the same MAC under a lenient decoder.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) ^ 1]
    return [f"{v}.{payload}.{mac[:-1]}{twin}", f"{v}.{payload}.{mac}=",
            f"{v}.{payload}.{mac[:20]}!{mac[20:]}", f"{v}.{payload}.{mac[:20]}\n{mac[20:]}",
            f"{v}.{payload}=.{mac}", f"{v}.{payload}.{mac}AA"]


def test_a_token_has_exactly_one_spelling() -> None:
    good = tokens.issue(SECRET, "ab" * 16, "cd" * 16, 1000, 60)
    assert tokens.verify(SECRET, good, 1001).user_id == "ab" * 16
    for variant in _variants(good):
        with pytest.raises(Unauthorized):
            tokens.verify(SECRET, variant, 1001)


@pytest.mark.parametrize("claims", [
    b'{"u":"ab","d":"' + b"cd" * 16 + b'","e":2000}',                      # short user id
    b'{"u":"' + b"AB" * 16 + b'","d":"' + b"cd" * 16 + b'","e":2000}',      # not lowercase
    b'{"u":"' + b"ab" * 16 + b'","d":"' + b"cd" * 16 + b'","e":"2000"}',    # expiry as text
    b'{"u":"' + b"ab" * 16 + b'","d":"' + b"cd" * 16 + b'","e":2000.5}',    # expiry as float
    b'{"u":"' + b"ab" * 16 + b'","d":"' + b"cd" * 16 + b'","e":true}',      # expiry as bool
    b'{"u":"' + b"ab" * 16 + b'","d":"' + b"cd" * 16 + b'","e":2000,"x":1}',  # extra claim
])
def test_signed_but_malformed_claims_are_refused(claims: bytes) -> None:
    signed = f"v1.{_b64(claims)}"
    token = f"{signed}.{_b64(tokens._mac(SECRET, signed))}"
    with pytest.raises(Unauthorized):
        tokens.verify(SECRET, token, 1001)
