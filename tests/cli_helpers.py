"""Running the CLI in-process from tests."""

from __future__ import annotations

import sys

import pytest

from speakerverify import cli


def one_line_error(args: list[str], monkeypatch, capsys) -> str:
    """Run ``speakerverify ARGS``; assert it exits 2 with one line on stderr and no traceback."""
    monkeypatch.setattr(sys, "argv", ["speakerverify", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err
