"""The artifact lists of a batch, in Arrow: what each parsed resource's list lacks (:func:`with_facts`), and
the lists of the good sides exploded into artifacts and tags (:func:`explode`), straight from the batch's
Arrow table. numpy on Arrow's flat arrays does this faster than DuckDB (decision 0004)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.schema import ARTIFACTS, TAGS
from pipeline.transform.sink import Sink, file_rows

# Tasks' sides a chunk: about 115,000 artifacts and 280,000 tags (decision 0012)
LISTS_CHUNK = 16 * 1024

# What :func:`resource_facts` tells of each resource, and its type
FACTS = {
    "tags": np.int32,
    "no_artifacts": np.bool_,
    "bad_artifact": np.bool_,
    "null_tags": np.bool_,
    "null_tag": np.bool_,
}


def with_facts(typed: pa.Table) -> pa.Table:
    """The batch's table (read.sql) with, for each side, the columns of :func:`resource_facts` and ``no_name``
    (its repository has no name), and each row numbered ``rn``."""
    for side in ("src", "dst"):
        chunks = [resource_facts(chunk) for chunk in typed.column(f"{side}_list").chunks]
        for name in FACTS:
            values = np.concatenate([c[name] for c in chunks]) if chunks else np.zeros(0, FACTS[name])
            typed = typed.append_column(f"{side}_{name}", pa.array(values))
        typed = typed.append_column(f"{side}_no_name", pc.is_null(typed.column(f"{side}_repository")))
    return typed.append_column("rn", pa.array(np.arange(typed.num_rows, dtype=np.int64)))


def resource_facts(artifacts: pa.Array) -> dict[str, np.ndarray]:
    """What the tasks table and the judging of resources (resource_errors.sql) need to know of each parsed
    resource's artifact list (``metadata.artifacts``), worked out on Arrow's flat arrays of all the artifacts
    and all the tags of the batch: its tag count (a null list counts none); and which of its parts the
    non-strict parse left NULL (missing, or of another type): the list, an artifact or its digest, a tag list,
    a tag. (Whether the resource parsed, and whether its repository has a name, DuckDB and the read's own
    columns tell.) Keep in step with the macro ``suspicious_resource`` (macros.sql)."""
    flat = pc.list_flatten(artifacts)  # the artifacts of every list, in order; a null artifact stays
    owner = pc.list_parent_indices(artifacts).to_numpy()
    tag_lists = pc.struct_field(flat, "tags")

    def anywhere(bad: np.ndarray, parents: np.ndarray, size: int) -> np.ndarray:
        found = np.zeros(size, dtype=bool)
        found[parents[bad]] = True
        return found

    null_tag = anywhere(
        numpy_mask(pc.is_null(pc.list_flatten(tag_lists))), pc.list_parent_indices(tag_lists).to_numpy(), len(flat)
    )
    counts = pc.fill_null(pc.list_value_length(tag_lists), 0).to_numpy()
    return {
        "tags": np.bincount(owner, weights=counts, minlength=len(artifacts)).astype(np.int32),
        "no_artifacts": numpy_mask(pc.is_null(artifacts)),
        "bad_artifact": anywhere(numpy_mask(pc.is_null(pc.struct_field(flat, "digest"))), owner, len(artifacts)),
        "null_tags": anywhere(numpy_mask(pc.is_null(tag_lists)), owner, len(artifacts)),
        "null_tag": anywhere(null_tag, owner, len(artifacts)),
    }


def numpy_mask(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array with no nulls as a numpy array (maybe read-only: combine it into a new one)."""
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def explode(
    typed: pa.Table, kept_rows: np.ndarray, rejected: dict[str, list[int]], keys: list[tuple[str, str]], sink: Sink
) -> tuple[int, int]:
    """Artifacts and tags: the artifact lists of the kept tasks' (rows ``kept_rows``) good sides (not
    ``rejected``: side to rows), taken from the batch's Arrow table (``typed``) a partition (``keys``) at a time
    and exploded, a row per artifact and a row per tag, each with its position in its list. Each chunk goes to
    one partition's files whole, and only the columns those files hold are repeated down to the artifacts and
    the tags (the partition's are in its path). Returns the number of artifacts and of tags."""
    kept = np.zeros(typed.num_rows, dtype=bool)
    kept[kept_rows] = True
    sources = []
    for side in ("src", "dst"):
        good = kept & numpy_mask(pc.greater(typed.column(f"{side}_artifacts"), 0))
        good[rejected[side]] = False
        source = pa.table(
            {
                "execution_id": typed.column("execution_id"),
                "task_id": typed.column("task_id"),
                "repository": typed.column(f"{side}_repository"),
                "artifacts": typed.column(f"{side}_list"),
            }
        )
        sources.append((side, good, source))
    instances, months = typed.column("instance_id"), typed.column("execution_month")
    artifacts_n = tags_n = 0
    for instance_id, month in keys:
        here = numpy_mask(pc.equal(instances, instance_id)) & numpy_mask(pc.equal(months, month))
        for side, good, source in sources:
            wanted = np.flatnonzero(good & here)
            for start in range(0, len(wanted), LISTS_CHUNK):
                # taken, not sliced: each chunk owns its buffers, so rows that wait in a writer for their row
                # group hold only theirs (decision 0012)
                some = wanted[start : start + LISTS_CHUNK]
                lists = source.take(pa.array(some)).combine_chunks()
                lists = lists.append_column("side", pa.repeat(pa.scalar(side), len(some)))
                rows, tagged = explode_lists(lists.to_batches()[0])
                sink(ARTIFACTS, file_rows(ARTIFACTS, rows), (instance_id, month))
                sink(TAGS, file_rows(TAGS, tagged), (instance_id, month))
                artifacts_n += rows.num_rows
                tags_n += tagged.num_rows
    return artifacts_n, tags_n


def explode_lists(chunk: pa.RecordBatch) -> tuple[pa.Table, pa.Table]:
    """A chunk of artifact lists (``artifacts`` and their parent's columns) as artifacts and as tags."""
    lists = chunk.column("artifacts")
    parents, artifact_idx = children(lists)
    flat = pc.list_flatten(lists)
    tag_lists = pc.struct_field(flat, "tags")
    rows = pa.Table.from_batches([chunk]).drop_columns(["artifacts"]).take(parents)
    rows = rows.append_column("artifact_idx", artifact_idx)
    rows = rows.append_column("digest", pc.struct_field(flat, "digest"))
    parents, tag_idx = children(tag_lists)
    tagged = rows.take(parents).append_column("tag_idx", tag_idx)
    tagged = tagged.append_column("tag", pc.list_flatten(tag_lists))
    rows = rows.append_column("artifact_type", pc.struct_field(flat, "type"))
    rows = rows.append_column("tag_count", pc.fill_null(pc.list_value_length(tag_lists), 0))
    return rows, tagged


def children(lists: pa.Array) -> tuple[pa.Array, pa.Array]:
    """For each value of the lists in ``lists`` (as :func:`pyarrow.compute.list_flatten` gives them): the
    index of its list, and its position in that list."""
    offsets = lists.offsets.to_numpy()
    parents = pc.list_parent_indices(lists).to_numpy()
    position = np.arange(len(parents), dtype=np.int64) - (offsets[parents] - offsets[0])
    return pa.array(parents), pa.array(position.astype(np.int32))
