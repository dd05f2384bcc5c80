"""`sealsync restore`'s arguments: a revision below 1 is the user's mistake
(exit 2, one line naming the option), never a request the server refuses."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sealsync_client.cli import main


@pytest.mark.parametrize("revision", ["0", "-3"])
def test_a_revision_below_one_is_a_usage_error(tmp_path: Path, revision: str) -> None:
    result = CliRunner().invoke(main, ["restore", str(tmp_path), "a.txt", "--revision",
                                       revision])
    assert result.exit_code == 2, result.output
    assert "--revision" in result.output and ">=1" in result.output
    assert "Traceback" not in result.output
