"""One page of a listing: checked against what the API documents, and landed as received."""

from __future__ import annotations

from typing import Any

from pipeline.api.client import ApiResponse
from pipeline.errors import BadResponseError
from pipeline.landing import FetchWriter, PageRecord


def rows_and_total(response: ApiResponse, key: str) -> tuple[list[Any], int]:
    """The rows under ``key`` and the ``total`` of a listing's page; :class:`BadResponseError` when either is
    not what the API documents."""
    rows = response.data.get(key)
    total = response.data.get("total")
    if rows is None:
        rows = []
    if not isinstance(rows, list) or not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise BadResponseError(
            f"GET {response.path} offset {response.params.get('offset')}: expected '{key}' (a list) and 'total' "
            f"(an integer), got {type(rows).__name__} and {type(total).__name__} (request id {response.request_id})",
            path=response.path,
        )
    return rows, total


def land_page(
    writer: FetchWriter, response: ApiResponse, offset: int, limit: int, rows: int, total: int, pass_no: int = 0
) -> PageRecord:
    """Land one page of a listing as received, with what its manifest entry needs."""
    return writer.write_page(
        pass_no=pass_no,
        body=response.body,
        path=response.path,
        params=dict(response.params),
        offset=offset,
        limit=limit,
        status=response.status,
        request_id=response.request_id,
        fetched_at=response.fetched_at,
        rows=rows,
        total=total,
        parsed=response.data,
    )
