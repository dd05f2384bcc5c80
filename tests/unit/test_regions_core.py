"""The pure routing core (chalicelib/core/regions.py): config parsing, the
sign-up pick and the per-request route, every branch."""
from __future__ import annotations

import json

import pytest

from chalicelib.core.errors import BadRequest
from chalicelib.core.regions import ReadOnly, Redirect, RegionConfigError, RegionMap, Replica, Serve

EU, US, AP = "eu-west-1", "us-east-1", "ap-southeast-2"
SPEC = json.dumps({
    EU: {"url": "https://eu.example/", "table": "t-eu", "replica": US,
         "replica_bucket": "b-eu-replica"},
    US: {"url": "https://us.example", "table": "t-us", "replica": EU,
         "replica_bucket": "b-us-replica"},
    AP: {"url": "https://ap.example", "table": "t-ap", "replica": US,
         "replica_bucket": "b-ap-replica"}})


def in_region(here: str, down: str = "") -> RegionMap:
    return RegionMap.parse(here, SPEC, down)


def test_unset_is_one_region_that_serves_everyone() -> None:
    one = RegionMap.parse(US, None)
    assert not one.multi and one.names() == [US]
    assert one.pick(None) == US
    assert one.route(None, write=True) == Serve()
    assert one.route(US, write=True) == Serve()


def test_home_here_or_unknown_to_the_directory_is_served() -> None:
    eu = in_region(EU)
    assert eu.route(EU, write=True) == Serve()
    assert eu.route(None, write=True) == Serve()  # an account from before regions


def test_an_account_homed_elsewhere_is_redirected_reads_and_writes() -> None:
    eu = in_region(EU)
    assert eu.route(US, write=False) == Redirect(US, "https://us.example")
    assert eu.route(US, write=True) == Redirect(US, "https://us.example")
    assert eu.regions[0].url == "https://eu.example"  # a trailing slash is dropped


def test_home_down_reads_come_from_the_replica_held_here_writes_are_refused() -> None:
    us = in_region(US, down=EU)
    assert us.route(EU, write=False) == Replica(EU, "t-eu", "b-eu-replica")
    assert us.route(EU, write=True) == ReadOnly(EU)
    assert us.route(US, write=True) == Serve()  # its own accounts are unaffected


def test_home_down_elsewhere_reads_go_to_the_region_holding_the_replica() -> None:
    ap = in_region(AP, down=EU)
    assert ap.route(EU, write=False) == Redirect(US, "https://us.example")
    assert ap.route(EU, write=True) == ReadOnly(EU)
    both = in_region(AP, down=f"{EU},{US}")  # the keeper is down too
    assert both.route(EU, write=False) == ReadOnly(EU)


def test_a_home_no_longer_listed_is_read_only() -> None:
    assert in_region(EU).route("sa-east-1", write=False) == ReadOnly("sa-east-1")


def test_pick_at_sign_up() -> None:
    eu = in_region(EU, down=AP)
    assert eu.pick(None) == EU
    assert eu.pick(US) == US
    for bad in ("mars-north-1", "", 7, ["us-east-1"]):
        with pytest.raises(BadRequest, match="region must be one of"):
            eu.pick(bad)
    with pytest.raises(BadRequest, match="not taking new accounts"):
        eu.pick(AP)


@pytest.mark.parametrize("spec, down, message", [
    ("not json", "", "not JSON"),
    ("[]", "", "object of 1 to"),
    ("{}", "", "object of 1 to"),
    (json.dumps({US: {"url": "https://us"}}), "", "does not list this region"),
    (json.dumps({EU: {"url": "https://eu"}, "Moon": {"url": "https://m"}}), "",
     "not a region name"),
    (json.dumps({EU: {"url": "http://eu.example"}}), "", "url must be https"),
    (json.dumps({EU: {"url": "https://eu", "colour": "blue"}}), "", "unknown fields"),
    (json.dumps({EU: {"url": "https://eu", "replica": US, "replica_bucket": "b"}}), "",
     "replica must be another listed region"),
    (json.dumps({EU: {"url": "https://eu", "replica": EU, "replica_bucket": "b"}}), "",
     "replica must be another listed region"),
    (json.dumps({EU: {"url": "https://eu", "replica_bucket": "b"}}), "", "go together"),
    (json.dumps({EU: {"url": "https://eu", "table": ""}}), "", "non-empty string"),
    (json.dumps({EU: {"url": "https://eu"}}), US, "unlisted regions"),
    (json.dumps({EU: []}), "", "expected an object"),
])
def test_bad_configuration_is_refused_with_a_reason(spec: str, down: str,
                                                    message: str) -> None:
    with pytest.raises(RegionConfigError, match=message):
        RegionMap.parse(EU, spec, down)


def test_down_without_regions_is_refused() -> None:
    with pytest.raises(RegionConfigError, match="needs SEALSYNC_REGIONS"):
        RegionMap.parse(EU, None, EU)


def test_local_urls_are_allowed_for_the_local_stack() -> None:
    spec = json.dumps({EU: {"url": "http://127.0.0.1:8000"},
                       US: {"url": "http://localhost:8001"}})
    assert RegionMap.parse(EU, spec).route(US, False) == Redirect(US, "http://localhost:8001")
