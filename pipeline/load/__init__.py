"""Load: the partitioned Parquet lake, local or on S3/OBS, and the locks that guard it."""
