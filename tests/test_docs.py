"""The docs describe the command line as it is, and their links lead somewhere (in the spirit of sqlite-utils'
tests/test_docs.py).

The click command tree is walked, so a new command or a new flag fails here until README.md or a file of
docs/ mentions it; every relative link of README.md and docs/ must point at a file of the repository (and at a
heading of it, when the link names one). Only files inside the repository are read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from pipeline.cli.cli import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCED = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
INDENTED = re.compile(r"^(?: {4}|\t).*$", re.MULTILINE)  # indented code blocks (list items indent by 2)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


DOCS_TEXT = "\n".join(read(page) for page in PAGES)


def walk(command: click.Command, ctx: click.Context) -> Iterator[tuple[click.Command, click.Context]]:
    """The command and every command below it, each with a context (which carries its help option)."""
    yield command, ctx
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, click.Context(sub, info_name=name, parent=ctx))


TREE = list(walk(cli, click.Context(cli, info_name="swr-etl")))
COMMANDS = [ctx.command_path for _, ctx in TREE[1:]]  # "swr-etl run", ...
FLAGS = sorted(
    {
        (ctx.command_path, opt)
        for command, ctx in TREE
        for param in command.get_params(ctx)  # the group's own options, and --help, included
        if isinstance(param, click.Option) and not param.hidden
        for opt in (*param.opts, *param.secondary_opts)
        if opt.startswith("--")
    }
)


def test_the_tree_is_walked() -> None:
    assert "swr-etl run" in COMMANDS and ("swr-etl", "--log-format") in FLAGS
    assert ("swr-etl run", "--help") in FLAGS and ("swr-etl demo", "--no-clean") in FLAGS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_documented(command: str) -> None:
    assert re.search(rf"(?<![\w-]){re.escape(command)}(?![\w-])", DOCS_TEXT), (
        f"'{command}' is not mentioned in README.md or docs/"
    )


@pytest.mark.parametrize(("command", "flag"), FLAGS, ids=[f"{c} {f}" for c, f in FLAGS])
def test_every_long_flag_is_documented(command: str, flag: str) -> None:
    assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", DOCS_TEXT), (
        f"{flag} (of '{command}') is not documented in README.md or docs/: see its help= text in pipeline/cli/"
    )


def prose(text: str) -> str:
    """The text without code: links and headings inside code are examples, not links."""
    return INLINE_CODE.sub("", INDENTED.sub("", FENCED.sub("", text)))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    text = text.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(FENCED.sub("", read(path)))}


LINKS = [
    (page, target)
    for page in PAGES
    for target in LINK.findall(prose(read(page)))
    if not re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target)  # http:, https:, mailto: are not checked
]


def test_the_docs_have_relative_links() -> None:
    assert len(LINKS) > 20


@pytest.mark.parametrize(("page", "target"), LINKS, ids=[f"{p.relative_to(ROOT)} -> {t}" for p, t in LINKS])
def test_every_relative_link_points_at_a_file_that_exists(page: Path, target: str) -> None:
    where, _, anchor = target.partition("#")
    path = (page.parent / where).resolve() if where else page
    assert path.is_relative_to(ROOT), f"{page.relative_to(ROOT)} links outside the repository: {target}"
    assert path.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
    if anchor and path.suffix == ".md":
        assert anchor in anchors(path), f"{page.relative_to(ROOT)} links to {target}: no such heading"


def test_no_sandbox_secret_is_printed_in_the_docs() -> None:
    """Example credentials are written as '...'; even the sandbox's built-in ones are not repeated."""
    from pipeline.sandbox import SandboxConfig

    defaults = SandboxConfig()
    for secret in (defaults.token, defaults.sk, defaults.iam_password):
        assert secret not in DOCS_TEXT
