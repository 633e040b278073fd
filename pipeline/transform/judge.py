"""The rejects Python explains: pages and tasks DuckDB could not make rows of (:func:`odd_pages_and_tasks`),
tasks that repeat an id an earlier part loaded (:func:`repeat_rejects`), and the detail of invalid JSON
(:func:`explain`). Resources are judged in SQL (``sql/transform/resource_errors.sql``)."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.schema import REJECTS
from pipeline.transform.connection import Connection
from pipeline.transform.pages import earlier_passes, page_text
from pipeline.transform.plan import Fetch, Page
from pipeline.transform.sql import UNPARSED, statement


def odd_pages_and_tasks(db: Connection, fetches: list[Fetch]) -> list[dict[str, Any]]:
    """Tasks with no id or that are not objects, and pages whose ``tasks`` is not a list (all rare), as found
    by odd.sql in the batch of ``fetches``, each explained with its raw text."""
    odd = db.execute(statement("odd")).fetchall()
    if not odd:
        return []
    pages = {(f.instance_id, f.execution_id, p[0], p[3]): (f, p) for f in fetches for p in f.pages}
    rejects = []
    whole: set[tuple[str, int, int, int]] = set()  # pages already rejected as a whole

    def order(row: tuple[Any, ...]) -> int:  # pages as a whole first: then their tasks need no look
        return 0 if row[4] == UNPARSED else 1 if row[4] is None else 2

    for instance_id, execution_id, offset, pass_no, position in sorted(odd, key=order):
        key = (instance_id, execution_id, offset, pass_no)
        if key in whole:
            continue
        fetch, page = pages[key]
        text, broken = page_text(fetch, page)
        if broken is not None:  # damaged since it was read (rare)
            rejects.append(page_reject(fetch, page, "page", broken, None, None))
            whole.add(key)
            continue
        if position == UNPARSED:
            reason = parse_error(db, text)
            if reason is not None:
                rejects.append(page_reject(fetch, page, "page", f"page is not JSON: {reason}", text, None))
                whole.add(key)
                continue
            position = None  # JSON, but not an object: its tasks are not a list (below)
        try:
            body = json.loads(text)
        except (ValueError, RecursionError) as exc:  # DuckDB parsed it: Python's reader refuses it
            reason = f"page could not be taken apart: {type(exc).__name__}: {exc}"
            rejects.append(page_reject(fetch, page, "page", reason, text, None))
            whole.add(key)
            continue
        tasks = body.get("tasks") if isinstance(body, dict) else None
        if position is None or not isinstance(tasks, list):
            raw = json.dumps(tasks, ensure_ascii=False)
            rejects.append(page_reject(fetch, page, "tasks", "the page's tasks are not a list", raw, None))
            whole.add(key)
            continue
        task = tasks[position]
        raw = json.dumps(task, ensure_ascii=False)
        if pass_no and raw in earlier_passes(fetch, offset, pass_no, position):
            continue  # a later pass landed the same item in the same place: it was rejected with the first
        if isinstance(task, dict):
            rejects.append(page_reject(fetch, page, "id", "task has no id: not loaded", raw, position))
        else:
            rejects.append(page_reject(fetch, page, "task", "task is not an object", raw, position))
    return rejects


def parse_error(db: Connection, text: str) -> str | None:
    """Why DuckDB cannot parse ``text`` as JSON (its own words, without the text it quotes), or None."""
    try:
        db.execute(statement("json_error"), {"text": text})
    except duckdb.InvalidInputException as exc:
        return str(exc).split("  Input: ", 1)[0].removeprefix("Invalid Input Error: ")
    return None


def page_reject(
    fetch: Fetch, page: Page, field: str, error: str, raw: str | None, position: int | None
) -> dict[str, Any]:
    return {
        "instance_id": fetch.instance_id,
        "execution_id": fetch.execution_id,
        "task_id": None,
        "field": field,
        "error": error,
        "raw": raw,
        "run_id": fetch.run_id,
        "page_offset": page[0],
        "position": position,
        "execution_month": fetch.month,
    }


def repeat_rejects(found: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """A reject for each task (a row of repeated.sql) that repeats the id of a task an earlier part of its
    execution loaded."""
    return [
        {
            "instance_id": instance_id,
            "execution_id": execution_id,
            "task_id": task_id,
            "field": "id",
            "error": "task id repeats a task loaded from an earlier part of the execution: not loaded again",
            "raw": id_raw,
            "run_id": run_id,
            "page_offset": page_offset,
            "position": pos,
            "execution_month": month,
        }
        for instance_id, execution_id, task_id, id_raw, run_id, page_offset, pos, month in found
    ]


def explain(rejects: pa.Table, extra: list[dict[str, Any]]) -> pa.Table:
    """Add detail to 'invalid JSON' reasons (where the text stops being JSON) and append Python's rejects."""
    errors = rejects.column("error").to_pylist()
    raws = rejects.column("raw").to_pylist()
    changed = False
    for i, (error, raw) in enumerate(zip(errors, raws, strict=True)):
        if error == "invalid JSON" and raw is not None:
            errors[i] = describe_invalid_json(raw)
            changed = True
    if changed:
        rejects = rejects.set_column(
            rejects.schema.get_field_index("error"), REJECTS.schema.field("error"), pa.array(errors, pa.string())
        )
    if extra:
        rows = {name: [r.get(name) for r in extra] for name in REJECTS.columns}
        rejects = pa.concat_tables([rejects, pa.table(rows, schema=REJECTS.schema)])
    return rejects


def describe_invalid_json(text: str) -> str:
    """Why ``text`` is not a JSON document, in words an operator can act on."""
    try:
        _, end = json.JSONDecoder().raw_decode(text.lstrip())
    except ValueError as exc:
        return f"invalid JSON: {exc}"
    trailing = text.lstrip()[end:]
    return (
        f"invalid JSON: a complete JSON value followed by {len(trailing)} characters of trailing text "
        f"starting {trailing[:40]!r}"
    )
