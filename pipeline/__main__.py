"""``python -m pipeline`` is ``swr-etl``."""

from pipeline.cli.cli import main

main()
