"""docs/deploy.md names only commands, flags and settings that exist."""

from __future__ import annotations

import re
from pathlib import Path

import click

from ledger.cli import main
from ledger.config import SETTINGS

DOC = Path(__file__).resolve().parent.parent / "docs" / "deploy.md"
# a command starts a line, an inline code span or `$(`, or follows VAR=value
COMMAND = re.compile(r"(?:^|`|\$\(|^[A-Z_]+=\S+ )ledger((?: [a-z][a-z-]*)+)([^`\n]*)", re.M)


def _command(words: list[str]) -> tuple[click.Command, list[str]]:
    """The deepest subcommand the words name, and the words left (arguments)."""
    command: click.Command = main
    while words and isinstance(command, click.Group) and words[0] in command.commands:
        command, words = command.commands[words[0]], words[1:]
    return command, words


def _flags(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in param.opts if opt.startswith("-")}


def test_every_ledger_command_and_flag_in_the_guide_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    found = COMMAND.findall(text)
    assert len(found) >= 15
    for words, rest in found:
        command, _ = _command(words.split())
        assert command is not main, f"`ledger{words}` names no command"
        assert not isinstance(command, click.Group), f"`ledger{words}` stops at a group"
        rest = re.sub(r"\$\([^)]*\)", "", rest)  # another command's output, as an argument
        for flag in re.findall(r"(?<![\w-])--?[a-z][a-z-]*", words + rest):
            assert flag in _flags(command), f"`ledger{words}` has no {flag}"


def test_every_setting_the_guide_names_exists() -> None:
    names = set(re.findall(r"LEDGER_[A-Z_]+\b(?!\.md)", DOC.read_text(encoding="utf-8")))
    assert names and names <= set(SETTINGS), names - set(SETTINGS)


def test_the_readme_links_the_guide() -> None:
    readme = DOC.parent.parent / "README.md"
    assert "(docs/deploy.md)" in readme.read_text(encoding="utf-8")
