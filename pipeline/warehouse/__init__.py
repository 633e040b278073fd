"""The DuckDB warehouse: views over the lake and the data dictionary."""
