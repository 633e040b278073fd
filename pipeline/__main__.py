"""``python -m pipeline`` is ``swr-etl``."""

from pipeline.cli import main

main()
