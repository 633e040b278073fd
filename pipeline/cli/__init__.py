"""The ``swr-etl`` command line: commands, flags, error lines and exit statuses."""

from __future__ import annotations

import os


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``swr-etl`` and ``python -m pipeline``."""
    # Arrow's system allocator keeps an S3 load's memory down (docs/decisions/0006); Arrow reads this once, when
    # pyarrow is first imported, so it is set before the commands are. A value the user set is kept.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    from pipeline.cli.cli import main as run_command

    run_command(argv)
