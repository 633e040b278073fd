"""Every command has help text with an example (walks the click tree, so a new command cannot skip it)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from pipeline.cli.cli import cli

COMMANDS = sorted(cli.commands)  # type: ignore[attr-defined]


def test_the_commands_of_this_release() -> None:
    assert {"extract", "sandbox", "demo"} <= set(COMMANDS)


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_every_command_has_help_with_an_example(name: str) -> None:
    args = [name, "--help"] if name else ["--help"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    command = cli.commands[name] if name else cli  # type: ignore[attr-defined]
    assert isinstance(command, click.Command)
    assert command.help and len(command.help.strip()) > 40
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{name or 'swr-etl'} {param.opts[0]} has no help text"


def test_the_committed_data_dictionary_is_current() -> None:
    from pathlib import Path

    from pipeline.warehouse.dictionary import render

    committed = Path(__file__).resolve().parent.parent / "docs" / "data-dictionary.md"
    assert committed.read_text() == render(), "docs/data-dictionary.md is stale: run make docs"
