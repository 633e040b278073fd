"""The raw landing: atomic files, manifests, and registry credentials masked before anything is written."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import tracemalloc
from pathlib import Path

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from pipeline import names
from pipeline.errors import LandingError, UnusableIdError
from pipeline.landing import Landing, atomic_write, decompress_page, new_run_id, scrub_credentials

SECRET = "registry-SECRET-value"
REGISTRY = {"name": "hub", "credential": {"type": "basic", "access_key": "reg-ak-1", "access_secret": SECRET}}


def resource(registry: object) -> dict[str, object]:
    return {"type": "artifact", "metadata": {"repository": {"name": "a/b"}}, "registry": registry}


def test_a_page_without_credentials_is_kept_byte_for_byte() -> None:
    body = b'{"tasks": [{"id": 1, "src_resource": "{\\"registry\\":null}"}],  "total": 1}'
    assert scrub_credentials(body) == (body, 0)


def test_credentials_in_embedded_strings_and_objects_are_masked() -> None:
    page = {
        "tasks": [
            {"id": 1, "src_resource": json.dumps(resource(REGISTRY)), "dst_resource": resource(REGISTRY)},
            {"id": 2, "src_resource": json.dumps(resource(None))},
        ],
        "total": 2,
    }
    body, n = scrub_credentials(json.dumps(page).encode())
    assert n == 4
    assert SECRET.encode() not in body and b"reg-ak-1" not in body
    out = json.loads(body)
    inner = json.loads(out["tasks"][0]["src_resource"])
    assert inner["registry"]["credential"] == {"type": "basic", "access_key": "***", "access_secret": "***"}
    assert out["tasks"][0]["dst_resource"]["registry"]["credential"]["access_secret"] == "***"
    assert json.loads(out["tasks"][1]["src_resource"]) == resource(None)


def test_credentials_inside_malformed_embedded_json_are_masked_too() -> None:
    broken = json.dumps(resource(REGISTRY))[:-5]  # truncated: not JSON any more
    page = {"tasks": [{"id": 1, "src_resource": broken}], "total": 1}
    body, n = scrub_credentials(json.dumps(page).encode())
    assert n == 2
    assert SECRET.encode() not in body
    assert json.loads(body)["tasks"][0]["src_resource"].startswith('{"type": "artifact"')


def test_credential_keys_spelled_with_json_escapes_are_masked_at_every_level() -> None:
    inner = '{"registry":{"credential":{"\\u0061ccess_secret":"' + SECRET + '","acc\\u0065ss_key":"reg-ak-1"}}}'
    page = (
        '{"tasks":[{"id":1,"src_resource":'
        + json.dumps(inner)
        + '}],"reg":{"\\u0061ccess_secret":"S2-'
        + SECRET
        + '"}}'
    )
    assert json.loads(json.loads(page)["tasks"][0]["src_resource"])  # valid JSON, keys spelled with escapes
    body, n = scrub_credentials(page.encode())
    assert n == 3
    assert SECRET.encode() not in body and b"reg-ak-1" not in body
    assert json.loads(body)["reg"] == {"access_secret": "***"}


def test_credentials_in_a_body_that_is_not_json_are_masked() -> None:
    body = ('{"tasks": [{"src_resource": "{\\"access_secret\\":\\"' + SECRET + '\\"}"  BROKEN').encode()
    scrubbed, n = scrub_credentials(body)
    assert n == 1
    assert SECRET.encode() not in scrubbed


def test_pages_and_manifest_round_trip(tmp_path: Path) -> None:
    run_id = new_run_id()
    writer = Landing(tmp_path).fetch("tasks", run_id, instance_id="i-1", execution_id=7)
    body = b'{"tasks": [{"id": 1}], "total": 1}'
    record = writer.write_page(
        body=body,
        path="/v2/p/instances/i-1/replication/executions/7/tasks",
        params={"offset": 0, "limit": 100},
        offset=0,
        limit=100,
        status=200,
        request_id="r-1",
        fetched_at="2026-11-29T00:00:00.000Z",
        rows=1,
        total=1,
    )
    writer.add(record)
    assert list(Landing(tmp_path).manifests("tasks")) == []  # not complete yet: readers skip it
    writer.complete(tasks=1)
    (manifest,) = Landing(tmp_path).manifests("tasks")
    assert manifest["instance_id"] == "i-1" and manifest["execution_id"] == 7 and manifest["run_id"] == run_id
    assert Path(manifest["folder"]).parts[-3:] == ("instance_id=i-1", "execution_id=7", f"run_id={run_id}")
    assert Landing.read_page(manifest["folder"], manifest["pages"][0]) == body


def test_pages_are_zstd_frames_the_same_body_always_gives_the_same_file(tmp_path: Path) -> None:
    body = json.dumps({"tasks": [{"id": n, "src_resource": json.dumps(resource(None))} for n in range(50)]}).encode()
    kw = dict(path="/p", params={}, limit=100, status=200, request_id=None, fetched_at="t", rows=50, total=50)
    one = Landing(tmp_path / "a").fetch("instances", new_run_id()).write_page(body=body, offset=0, **kw)  # type: ignore[arg-type]
    two = Landing(tmp_path / "b").fetch("instances", new_run_id()).write_page(body=body, offset=0, **kw)  # type: ignore[arg-type]
    assert one.file == "page-000000000.json.zst"
    (a,) = (tmp_path / "a").rglob(one.file)
    (b,) = (tmp_path / "b").rglob(two.file)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # the zstd frame magic
    assert len(a.read_bytes()) < len(body) // 4
    assert decompress_page(a, a.read_bytes()) == body


def test_gzip_pages_of_older_landings_are_read_and_a_broken_page_is_a_landing_error(tmp_path: Path) -> None:
    body = b'{"instances": [], "total": 0}'
    folder = tmp_path / "run_id=x"
    folder.mkdir()
    (folder / "page-000000000.json.gz").write_bytes(gzip.compress(body))
    page = {"file": "page-000000000.json.gz", "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    assert Landing.read_page(folder, page) == body
    for name, data in [("page-000000000.json.zst", b"\x28\xb5\x2f\xfd" + b"garbage"), ("page-1.json.gz", b"nope")]:
        (folder / name).write_bytes(data)
        with pytest.raises(LandingError, match=f"unreadable page .*{re.escape(name)}"):
            Landing.read_page(folder, dict(page, file=name))
    with pytest.raises(ValueError):
        decompress_page("page.json.zst", gzip.compress(body))  # a name that lies about its codec
    with pytest.raises(ValueError, match="cut short"):
        decompress_page("page.json.zst", zstandard.ZstdCompressor().compress(body * 50)[:-4])  # cut short


def test_a_zstd_page_written_by_another_tool_without_its_size_in_the_frame_is_read() -> None:
    body = b'{"tasks": [], "total": 0}' * 100
    streamed = zstandard.ZstdCompressor(write_content_size=False).compress(body)
    assert zstandard.frame_content_size(streamed) == -1
    assert decompress_page("page-000000000.json.zst", streamed) == body


def test_pages_of_several_frames_are_read_whole_and_anything_cut_short_or_oversized_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = b'{"tasks": [], "total": 0}' * 100
    sized, unsized = zstandard.ZstdCompressor().compress(body), zstandard.ZstdCompressor(write_content_size=False)
    streamed = unsized.compress(body)
    assert decompress_page("p.json.zst", sized + streamed + sized) == body * 3  # as DuckDB reads them
    empty = zstandard.ZstdCompressor().compress(b"")
    assert decompress_page("p.json.zst", empty + sized) == body  # a first frame of nothing hides no other
    for bad, reason in [
        (streamed[:-6], "cut short"),
        (sized + b"junk", "Unknown frame descriptor"),
        (b"", "content size"),
    ]:
        with pytest.raises(ValueError, match=reason):
            decompress_page("p.json.zst", bad)
    corrupt = bytearray(gzip.compress(body * 10))
    corrupt[20:40] = bytes(b ^ 0x5A for b in corrupt[20:40])
    with pytest.raises(ValueError):
        decompress_page("p.json.gz", bytes(corrupt))  # zlib's own error, not let through
    monkeypatch.setattr("pipeline.landing.MAX_PAGE_BYTES", len(body) - 1)
    with pytest.raises(ValueError, match="more than a page can be"):
        decompress_page("p.json.zst", sized)  # the size the frame claims is checked before any allocation
    with pytest.raises(ValueError, match="more than a page can be"):
        decompress_page("p.json.zst", streamed)


def test_a_page_that_expands_beyond_any_page_is_refused_before_its_memory_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A few hundred KiB of zstd or gzip can expand to gigabytes: decompression stops once a page is too large,
    whatever the data states about itself (a streamed zstd frame states no size; gzip never does)."""
    monkeypatch.setattr("pipeline.landing.MAX_PAGE_BYTES", 1 << 20)
    zeros = bytes(64 << 20)
    bombs = {
        "p.json.zst": zstandard.ZstdCompressor(write_content_size=False).compress(zeros),
        "p.json.gz": gzip.compress(zeros, compresslevel=1),
    }
    del zeros
    for name, bomb in bombs.items():
        assert len(bomb) < 1 << 20
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match="more than a page can be"):
                decompress_page(name, bomb)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20, (name, peak)  # the whole would be 64 MiB
    monkeypatch.undo()  # and a small page takes about its own size, not the limit's
    body = json.dumps({"tasks": [{"id": n} for n in range(100)], "total": 100}).encode()
    for name, data in {"p.json.zst": zstandard.ZstdCompressor(write_content_size=False).compress(body),
                       "p.json.gz": gzip.compress(body)}.items():  # fmt: skip
        tracemalloc.start()
        try:
            assert decompress_page(name, data) == body
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 << 20, (name, peak)


def test_a_page_that_does_not_match_its_manifest_is_refused(tmp_path: Path) -> None:
    writer = Landing(tmp_path).fetch("instances", new_run_id())
    kw = dict(path="/p", params={}, offset=0, limit=100, status=200, request_id=None, fetched_at="t", total=0)
    writer.add(writer.write_page(body=b'{"instances": [], "total": 0}', rows=0, **kw))  # type: ignore[arg-type]
    writer.complete()
    (manifest,) = Landing(tmp_path).manifests("instances")
    page = dict(manifest["pages"][0], sha256="0" * 64)
    with pytest.raises(LandingError, match="does not match its manifest"):
        Landing.read_page(manifest["folder"], page)


@pytest.mark.parametrize("odd", ["..", ".", "a/b", "x\\y", "a=b", "q?x", "new\nline", "x%2D1", "[*]", "__none__"])
def test_ids_from_the_api_name_one_folder_level_each_and_read_back_exactly(tmp_path: Path, odd: str) -> None:
    writer = Landing(tmp_path).fetch("tasks", new_run_id(), instance_id=odd, execution_id=1)
    instance_folder = writer.folder.parent.parent
    assert instance_folder.parent == tmp_path / "raw" / "tasks"  # one level, inside the landing
    assert names.decode(instance_folder.name.removeprefix("instance_id=")) == odd
    assert not set(instance_folder.name) & set("/\\?*[]\n")  # no path level, no glob, no line break
    assert instance_folder.name.count("=") == 1


@pytest.mark.parametrize("bad", ["", "x" * 231, "é" * 39])
def test_an_id_no_folder_can_be_named_by_is_refused_for_itself(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UnusableIdError):
        Landing(tmp_path).fetch("tasks", new_run_id(), instance_id=bad, execution_id=1)


_IDS = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=19)  # 19 x 12 bytes < 230


@given(_IDS, _IDS)
def test_the_folder_encoding_is_reversible_and_never_merges_two_ids(a: str, b: str) -> None:
    assert names.decode(names.encode(a)) == a
    assert names.canonical(names.encode(a))
    assert (names.encode(a) == names.encode(b)) == (a == b)
    assert names.encode(a) != names.PLACEHOLDER
    assert set(names.encode(a)) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._%")


def test_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    atomic_write(target, b"data")
    assert target.read_bytes() == b"data"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_run_ids_sort_by_time() -> None:
    from datetime import UTC, datetime

    early = new_run_id(datetime(2026, 1, 1, 0, 0, 0, 5000, tzinfo=UTC))
    late = new_run_id(datetime(2026, 1, 1, 0, 0, 0, 6000, tzinfo=UTC))
    assert early < late
    assert early.startswith("20260101T000000005Z-")
