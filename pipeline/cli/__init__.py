"""The ``swr-etl`` command line: commands, flags, error lines and exit statuses."""
