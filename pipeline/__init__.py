"""swr-replication-etl: SWR Enterprise Edition replication tasks into a Parquet lake and a DuckDB warehouse."""

__version__ = "0.1.0"
