"""`.sealsync/config.json` damaged by hand: one clear NotInitialised (exit 2
at the CLI) naming the file, never a TypeError deep in a later step."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sealsync_client.state import Config, NotInitialised

GOOD = {"server": "http://127.0.0.1:8000", "user_id": "ab" * 16, "device_id": "cd" * 16,
        "device_name": "laptop"}


def write(root: Path, text: str) -> None:
    (root / ".sealsync").mkdir()
    (root / ".sealsync" / "config.json").write_text(text)


@pytest.mark.parametrize("text", [
    "", "[1, 2]", "null", json.dumps({**GOOD, "device_id": 5}),
    json.dumps({**GOOD, "server": None}), json.dumps({**GOOD, "extra": "x"}),
    json.dumps({k: v for k, v in GOOD.items() if k != "server"}),
])
def test_a_damaged_config_names_the_file(tmp_path: Path, text: str) -> None:
    write(tmp_path, text)
    with pytest.raises(NotInitialised, match="config.json is damaged"):
        Config.load(tmp_path)


def test_a_good_config_loads(tmp_path: Path) -> None:
    write(tmp_path, json.dumps(GOOD))
    assert Config.load(tmp_path) == Config(**GOOD)


def test_a_sealsync_that_is_a_file_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / ".sealsync").write_text("not a directory")
    with pytest.raises(NotInitialised, match="cannot be read"):
        Config.load(tmp_path)
