"""``python -m bench``: every benchmark, one after the other (what ``make bench`` runs)."""

from bench import extract_bench, lake_bench, subtasks_bench, transform_bench

print("== extract ==", flush=True)
extract_bench.main()
print("\n== subtasks and the request budget ==", flush=True)
subtasks_bench.main()
print("\n== transform and load ==", flush=True)
transform_bench.main()
print("\n== the same load into a local lake and into S3 on loopback ==", flush=True)
lake_bench.main()
