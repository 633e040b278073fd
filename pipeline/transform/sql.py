"""The transform's SQL: one statement a file in ``sql/transform/``, with the constants it is filled in with.

Only constants go into a statement's text (``${name}`` in its file); every value goes in as one of DuckDB's
parameters (``$name``). The rules several statements share are macros of the connection
(``sql/transform/macros.sql``, :func:`define_macros`).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Protocol

from pipeline.sqlfiles import sql_folder

# Every field of a task, read as text: a value of an unexpected type becomes text instead of an error, and
# is then cast (and, if it does not cast, recorded). A task that is not an object becomes NULL.
TASK_FIELDS = (
    "id",
    "execution_id",
    "resource_type",
    "src_resource",
    "dst_resource",
    "operation",
    "job_id",
    "status",
    "StatusRevision",
    "status_revision",
    "start_time",
    "end_time",
)
PAGE_STRUCTURE = json.dumps({"tasks": [dict.fromkeys(TASK_FIELDS, "VARCHAR")]})
# What settling a fetch's duplicated task ids reads of a task (ids.sql)
IDS_STRUCTURE = json.dumps({"tasks": [dict.fromkeys(("id", "StatusRevision", "status_revision"), "VARCHAR")]})

# What the transform reads from a resource. Non-strict: a missing key or a value of the wrong type gives NULL,
# and such suspicious resources are then judged exactly (resource_errors.sql) before use.
RESOURCE_STRUCTURE = json.dumps(
    {
        "type": "VARCHAR",
        "deleted": "BOOLEAN",
        "is_delete_tag": "BOOLEAN",
        "override": "BOOLEAN",
        "metadata": {
            "repository": {"name": "VARCHAR", "metadata": {"public": "VARCHAR"}},
            "artifacts": [{"type": "VARCHAR", "digest": "VARCHAR", "tags": ["VARCHAR"]}],
        },
    }
)

UNPARSED = -1  # the position of the one row a page DuckDB cannot parse gives (read.sql)


# A constant's place in a statement: ``${name}``. A bare ``$name`` is one of DuckDB's parameters, left as it is.
_CONSTANT = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")


@functools.cache
def statement(name: str, **constants: str | int) -> str:
    """The statement of ``sql/transform/<name>.sql``, its ``${...}`` filled in with ``constants`` (each one
    it names, and no other)."""
    text = (sql_folder("transform") / f"{name}.sql").read_text(encoding="utf-8")
    wanted = set(_CONSTANT.findall(text))
    if wanted != set(constants):
        raise ValueError(f"sql/transform/{name}.sql takes the constants {sorted(wanted)}, not {sorted(constants)}")
    return _CONSTANT.sub(lambda found: str(constants[found.group(1)]), text)


class _Executes(Protocol):
    def execute(self, query: str, parameters: Any = None) -> Any: ...


def define_macros(db: _Executes) -> None:
    """Define the transform's macros (``macros.sql``) on the connection ``db``."""
    db.execute(statement("macros", resource_structure=RESOURCE_STRUCTURE))
