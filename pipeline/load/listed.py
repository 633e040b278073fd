"""The small listed tables (instances, policies, registries, executions) of an update: the lake's rows and the
landing's."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.schema import EXECUTIONS, INSTANCES, POLICIES, REGISTRIES, Table

_LISTED_KEYS = {
    INSTANCES.name: (),
    POLICIES.name: ("policy_id",),
    REGISTRIES.name: ("registry_id",),
    EXECUTIONS.name: ("execution_id",),
}


def merge_listed(table: Table, old: pa.Table, new: pa.Table) -> pa.Table:
    """One instance's rows of a small table: the landing's (``new``) and the lake's (``old``) that the landing
    does not have; for a key in both, the earlier ``first_seen_run``."""
    keys = _LISTED_KEYS[table.name]
    old = _with_columns(old, new.schema)
    if not keys:  # instances: one row per instance file
        if new.num_rows == 0:
            return old
        first = min(r for r in old["first_seen_run"].to_pylist() + new["first_seen_run"].to_pylist() if r)
        return new.set_column(new.schema.get_field_index("first_seen_run"), "first_seen_run", pa.array([first]))
    (key,) = keys
    first_seen = dict(zip(old[key].to_pylist(), old["first_seen_run"].to_pylist(), strict=True))
    merged = [
        min(r, first_seen.get(k) or r) if r else first_seen.get(k)
        for k, r in zip(new[key].to_pylist(), new["first_seen_run"].to_pylist(), strict=True)
    ]
    new = new.set_column(new.schema.get_field_index("first_seen_run"), "first_seen_run", pa.array(merged, pa.string()))
    kept = old.filter(pc.invert(pc.is_in(old[key], value_set=new[key])))
    return pa.concat_tables([new, kept]).sort_by([(key, "ascending")])


def _with_columns(old: pa.Table, schema: pa.Schema) -> pa.Table:
    """The lake's rows in ``schema``: a file written before a column was added gets that column as nulls."""
    columns = [old[f.name] if f.name in old.column_names else pa.nulls(old.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema.remove_metadata()).cast(schema)
