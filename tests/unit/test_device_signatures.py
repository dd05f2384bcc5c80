"""Issue 15: a leaked bearer token alone commits nothing.

Each test plays the token thief (or a revoked device) against the real app
and commit pipeline (moto + fakeredis): the attack is made, and the store
shows it did nothing. Before device signatures every one of these attacks
committed (the garbage batch, the unsigned delete, the revoked device's
upload all came back `accepted`).
"""
from __future__ import annotations

import dataclasses
import secrets
import time
from typing import Any

from chalicelib.core.batch import FINISHED
from chalicelib.core.ids import new_id
from local import apiclient
from tests.harness import BatchItem, Device, Harness, PendingBatch


def verdicts(h: Harness, dev: Device, batch: PendingBatch) -> list[tuple[Any, ...]]:
    body = h.batch(dev, batch.batch_id)
    assert body["status"] == FINISHED
    return [(e["status"], e.get("revision") or e.get("reason")) for e in body["entries"]]


def thief(dev: Device) -> Device:
    """What a leaked token gives: the token, not the device's key."""
    return dataclasses.replace(dev, device_seed=secrets.token_bytes(32))


def test_a_leaked_token_commits_no_garbage_batch(fast: Harness) -> None:
    h, owner = fast, fast.signup()
    mine = BatchItem(new_id(), 0)
    assert h.commit(h.stage_batch(owner, [mine]).key).status == FINISHED
    head = {k: v for k, v in (h.head(owner, mine.file_id) or {}).items() if k != "manifest_url"}
    stolen = thief(owner)
    garbage = [BatchItem(mine.file_id, 1, b"garbage"), BatchItem(new_id(), 0, b"junk"),
               BatchItem(new_id(), 0, tombstone=True)]
    batch = h.stage_batch(stolen, garbage)
    assert h.commit(batch.key).status == FINISHED
    assert verdicts(h, owner, batch) == [("rejected", "bad signature: not signed by the "
                                          "uploading device for these bytes")] * 3
    assert {k: v for k, v in (h.head(owner, mine.file_id) or {}).items()
            if k != "manifest_url"} == head
    assert [c["file_id"] for c in h.changes(owner)["changes"]] == [mine.file_id]


def test_an_entry_without_a_signature_is_rejected_alone(fast: Harness) -> None:
    """One bad entry is that entry's rejection, never the whole batch's."""
    h, dev = fast, fast.signup()
    good, forged = BatchItem(new_id(), 0), BatchItem(new_id(), 0)
    batch = h.stage_batch(dev, [good, forged], put=False)
    trailer = good.signature(dev) + bytes(64)  # the second entry's signature is zeros
    fast.rt.s3.put_object(Bucket=fast.rt.settings.bucket, Key=batch.key,
                          Body=good.manifest + forged.manifest + trailer)
    assert h.commit(batch.key).status == FINISHED
    assert verdicts(h, dev, batch) == [
        ("accepted", 1),
        ("rejected", "bad signature: not signed by the uploading device for these bytes")]


def test_swapped_bytes_fail_the_signature(fast: Harness) -> None:
    """A valid signature binds the bytes: the same entry with other bytes of
    the same length (a replayed or intercepted PUT) is refused."""
    h, dev = fast, fast.signup()
    item = BatchItem(new_id(), 0, b"the real sealed manifest")
    batch = h.stage_batch(dev, [item], put=False)
    fast.rt.s3.put_object(Bucket=fast.rt.settings.bucket, Key=batch.key,
                          Body=b"X" * len(item.manifest) + item.signature(dev))
    assert h.commit(batch.key).status == FINISHED
    assert verdicts(h, dev, batch)[0][0] == "rejected"
    assert h.head(dev, item.file_id) is None


def test_another_devices_signature_does_not_count(fast: Harness) -> None:
    """The signature must be the presigning device's own: a second device's
    key (or a stolen one of a revoked device) does not sign for this token."""
    h, a = fast, fast.signup()
    b = h.add_device(a.user_id, a.auth_key, a.account_seed)
    item = BatchItem(new_id(), 0)
    batch = h.stage_batch(dataclasses.replace(a, device_seed=b.device_seed), [item])
    assert h.commit(batch.key).status == FINISHED
    assert verdicts(h, a, batch)[0][0] == "rejected"


def test_single_uploads_and_deletes_need_the_device_signature(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    file_id = new_id()
    assert h.commit(h.stage(dev, file_id, 0).key).single.status == "accepted"
    stolen = thief(dev)
    # an unsigned upload, a forged one, an unsigned and a forged delete
    unsigned = h.post("/v1/uploads", {"file_id": file_id, "base_revision": 1,
                                      "manifest_size": 4}, stolen)
    assert unsigned.status_code == 201
    h.rt.s3.put_object(Bucket=h.rt.settings.bucket,
                       Key=f"staging/{dev.user_id}/{unsigned.json_body['upload_id']}",
                       Body=b"evil")
    out = h.commit(f"staging/{dev.user_id}/{unsigned.json_body['upload_id']}")
    assert out.single.status == "rejected" and str(out.single.reason).startswith("unsigned")
    assert h.commit(h.stage(stolen, file_id, 1).key).single.status == "rejected"
    bare = h.delete(f"/v1/files/{file_id}?base_revision=1", stolen)
    bare_key = f"staging/{dev.user_id}/{bare.json_body['upload_id']}"
    assert h.commit(bare_key).single.status == "rejected"
    forged = h.delete_file(stolen, file_id, 1)
    assert h.commit(f"staging/{dev.user_id}/{forged.json_body['upload_id']}").single.status \
        == "rejected"
    head = h.head(dev, file_id)
    assert head is not None and head["revision"] == 1 and not head["deleted"]
    # the device itself still deletes
    signed = h.delete_file(dev, file_id, 1)
    assert h.commit(f"staging/{dev.user_id}/{signed.json_body['upload_id']}").single.status \
        == "accepted"


def revoke(h: Harness, by: Device, device_id: str) -> Any:
    return h.delete(f"/v1/devices/{device_id}?signature="
                    f"{apiclient.sign_revoke(by, device_id)}", by)


def test_a_revoked_device_stops_writing_at_once_and_reading(fast: Harness) -> None:
    h, laptop = fast, fast.signup()
    phone = h.add_device(laptop.user_id, laptop.auth_key, laptop.account_seed)
    early = h.stage_batch(phone, [BatchItem(new_id(), 0)], put=False)  # presigned before
    assert revoke(h, laptop, phone.device_id).status_code == 200
    # writes: presign refused, and a batch presigned earlier is rejected at commit
    assert h.post("/v1/batches", {"entries": [BatchItem(new_id(), 0).body()]},
                  phone).status_code == 401
    h.rt.s3.put_object(Bucket=h.rt.settings.bucket, Key=early.key, Body=early.bundle)
    assert h.commit(early.key).status == FINISHED
    assert verdicts(h, laptop, early) == [("rejected", "the uploading device was revoked")]
    # reads (the authorizer; API Gateway may serve its cached answer for 60 s)
    assert h.get("/v1/changes", phone).status_code == 401
    # no new token, and the id can never be enrolled again
    assert h.post("/v1/tokens", {"user_id": phone.user_id, "auth_key": phone.auth_key,
                                 "device_id": phone.device_id}).status_code == 401
    again = apiclient.enrolment(laptop.user_id, laptop.account_seed, secrets.token_bytes(32),
                                phone.device_id)
    assert h.post("/v1/devices", {"user_id": laptop.user_id, "auth_key": laptop.auth_key,
                                  **again}).status_code == 409
    # the others carry on
    assert h.commit(h.stage_batch(laptop, [BatchItem(new_id(), 0)]).key).status == FINISHED
    listed = {d["device_id"]: d for d in h.get("/v1/devices", laptop).json_body["devices"]}
    assert listed[phone.device_id]["revoked_at"] and not listed[phone.device_id]["can_write"]
    assert listed[laptop.device_id]["current"] and listed[laptop.device_id]["can_write"]


def test_a_leaked_token_cannot_revoke_devices(fast: Harness) -> None:
    """Revocation needs the account key: a thief cannot lock the owner out."""
    h, laptop = fast, fast.signup()
    stolen = dataclasses.replace(laptop, account_seed=secrets.token_bytes(32))
    assert revoke(h, stolen, laptop.device_id).status_code == 403
    assert h.get("/v1/changes", laptop).status_code == 200


def test_enrolment_needs_the_account_keys_vouch(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    base = {"user_id": dev.user_id, "auth_key": dev.auth_key}
    stranger = apiclient.enrolment(dev.user_id, secrets.token_bytes(32),
                                   secrets.token_bytes(32))
    r = h.post("/v1/devices", {**base, **stranger})
    assert r.status_code == 401 and "signing_key" in r.json_body["message"]
    r = h.post("/v1/devices", {**base, **{**stranger, "signing_key": None}})
    assert r.status_code == 401 and "device_sig" in r.json_body["message"]


def test_an_account_from_before_device_keys_registers_its_key_once(fast: Harness) -> None:
    """Migration: the first enrolment that sends `signing_key` sets it (proved
    by the auth key); a different key later is refused."""
    h = fast
    auth_key = secrets.token_hex(32)
    user_id = h.post("/v1/accounts", {"auth_key": auth_key, "kdf": "old"}).json_body["user_id"]
    base = {"user_id": user_id, "auth_key": auth_key}
    seed = secrets.token_bytes(32)
    body = {**base, **apiclient.enrolment(user_id, seed, secrets.token_bytes(32))}
    r = h.post("/v1/devices", {k: v for k, v in body.items() if k != "signing_key"})
    assert r.status_code == 400 and "no signing key yet" in r.json_body["message"]
    assert h.post("/v1/devices", body).status_code == 201
    assert h.rt.devices.signing_key(user_id) == bytes.fromhex(apiclient.public_key(seed))
    other = apiclient.enrolment(user_id, secrets.token_bytes(32), secrets.token_bytes(32))
    assert h.post("/v1/devices", {**base, **other}).status_code == 401


def test_a_revoked_device_gets_no_more_push(fast: Harness) -> None:
    """Its WebSocket connections and mobile registration are forgotten at
    revocation, and a new connection is refused."""
    import app as app_module
    from tests.unit.test_push import connect, ws_event

    h, laptop = fast, fast.signup()
    phone = h.add_device(laptop.user_id, laptop.auth_key, laptop.account_seed)
    connect(laptop)
    connect(phone)
    h.rt.registry.put_mobile(laptop.user_id, phone.device_id, "apns", "arn:aws:sns:x", 0)
    assert revoke(h, laptop, phone.device_id).status_code == 200
    targets = h.rt.registry.targets(laptop.user_id, int(time.time()))
    assert [c.device_id for c in targets.connections] == [laptop.device_id]
    assert targets.mobiles == []
    again = app_module.ws_connect(ws_event("$connect", "c-again", token=phone.token), None)
    assert again["statusCode"] == 401
