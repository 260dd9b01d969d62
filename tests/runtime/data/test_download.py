"""Downloads against a real loopback HTTP server: resume, retries, caps, redirects, errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from kaito_runtime.data import (
    DownloadError,
    FetchSettings,
    SizeLimitError,
    UrlRefusedError,
    fetch_urls,
)
from tests.runtime.data.fileserver import Cut, FileServer, Redirect, Status, serve_files

pytestmark = pytest.mark.anyio

PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)


class RecordingSleep:
    """The backoff seam: records each requested delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def server() -> Iterator[FileServer]:
    with serve_files() as s:
        yield s


def _settings(dest: Path, **overrides: Any) -> FetchSettings:
    return attrs.evolve(FetchSettings(dest=dest, allow_local=True, attempts=3), **overrides)


def _entries(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir())


def _leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir() if ".part" in p.name)


async def test_files_land_under_url_names_with_nothing_partial(
    server: FileServer, tmp_path: Path
) -> None:
    a = server.add("/d/train.parquet", PAYLOAD)
    b = server.add("/e/train.parquet", b"second")
    files = await fetch_urls([a + "?download=true", b], _settings(tmp_path))
    assert [f.path.name for f in files] == ["train.parquet", "train-1.parquet"]
    assert (tmp_path / "train.parquet").read_bytes() == PAYLOAD
    assert (tmp_path / "train-1.parquet").read_bytes() == b"second"
    assert _leftovers(tmp_path) == []


async def test_a_broken_transfer_resumes_with_a_range_request(
    server: FileServer, tmp_path: Path
) -> None:
    url = server.add("/big.bin", PAYLOAD)
    server.fail_next("/big.bin", Cut(after=1_000_000))
    sleep = RecordingSleep()
    files = await fetch_urls([url], _settings(tmp_path), sleep=sleep, jitter=lambda: 0.0)
    assert (tmp_path / "big.bin").read_bytes() == PAYLOAD
    ranges = [h.get("Range") for _, h in server.requests]
    assert ranges[0] is None
    assert ranges[1] is not None
    resumed_at = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 1_000_000
    assert files[0].resumed_from == resumed_at
    assert server.requests[1][1]["If-Range"].startswith('"')
    assert sleep.delays == [0.5]  # base 1 s, half fixed + jitter 0


async def test_a_server_that_ignores_range_restarts_from_zero(tmp_path: Path) -> None:
    with serve_files(honour_range=False) as server:
        url = server.add("/big.bin", PAYLOAD)
        server.fail_next("/big.bin", Cut(after=500_000))
        await fetch_urls([url], _settings(tmp_path), sleep=RecordingSleep())
    assert (tmp_path / "big.bin").read_bytes() == PAYLOAD


async def test_a_restarted_fetch_resumes_an_existing_part_file(
    server: FileServer, tmp_path: Path
) -> None:
    url = server.add("/big.bin", PAYLOAD)
    (tmp_path / "big.bin.part").write_bytes(PAYLOAD[:12345])
    files = await fetch_urls([url], _settings(tmp_path))
    assert server.requests[0][1]["Range"] == "bytes=12345-"
    assert files[0].resumed_from == 12345
    assert (tmp_path / "big.bin").read_bytes() == PAYLOAD


async def test_a_complete_part_file_is_finalised_on_416(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/a.json", b'{"a": 1}')
    (tmp_path / "a.json.part").write_bytes(b'{"a": 1}')
    await fetch_urls([url], _settings(tmp_path))
    assert (tmp_path / "a.json").read_bytes() == b'{"a": 1}'
    assert _leftovers(tmp_path) == []


async def test_completed_files_are_not_fetched_again(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/a.json", b"new")
    (tmp_path / "a.json").write_bytes(b"done")
    files = await fetch_urls([url], _settings(tmp_path))
    assert files[0].skipped
    assert server.requests == []


async def test_server_errors_are_retried_with_growing_backoff_and_retry_after(
    server: FileServer, tmp_path: Path
) -> None:
    url = server.add("/a.csv", b"x,y\n1,2\n")
    server.fail_next("/a.csv", Status(503), Status(429, {"Retry-After": "7"}))
    sleep = RecordingSleep()
    await fetch_urls([url], _settings(tmp_path, attempts=4), sleep=sleep, jitter=lambda: 1.0)
    assert sleep.delays == [1.0, 7.0]
    assert (tmp_path / "a.csv").read_bytes() == b"x,y\n1,2\n"


async def test_retries_give_up_with_the_last_reason(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/a.csv", b"x")
    server.fail_next("/a.csv", Status(502), Status(502), Status(502))
    with pytest.raises(DownloadError) as err:
        await fetch_urls([url], _settings(tmp_path), sleep=RecordingSleep())
    assert "after 3 attempts: HTTP 502 Bad Gateway" in str(err.value)
    assert "reachable from the cluster" in str(err.value)
    assert err.value.exit_code == 3


async def test_not_found_fails_at_once(server: FileServer, tmp_path: Path) -> None:
    sleep = RecordingSleep()
    with pytest.raises(DownloadError, match=r"answered HTTP 404 Not Found; check the URL"):
        await fetch_urls([server.url("/missing.parquet")], _settings(tmp_path), sleep=sleep)
    assert sleep.delays == []
    assert len(server.requests) == 1


async def test_unreachable_host_is_retried_then_named(tmp_path: Path) -> None:
    with serve_files() as server:
        dead = server.url("/a.parquet")
    with pytest.raises(DownloadError) as err:
        await fetch_urls([dead], _settings(tmp_path, attempts=2), sleep=RecordingSleep())
    assert "could not download input URL" in str(err.value)
    assert "cannot connect to 127.0.0.1" in str(err.value)


async def test_the_size_cap_refuses_a_large_file(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/big.bin", PAYLOAD)
    with pytest.raises(SizeLimitError, match="over the 1048576-byte limit; raise --max-bytes"):
        await fetch_urls([url], _settings(tmp_path, max_bytes=1024 * 1024))
    assert _entries(tmp_path) == []


async def test_an_empty_answer_is_an_error(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/empty.json", b"")
    with pytest.raises(DownloadError, match="returned an empty file"):
        await fetch_urls([url], _settings(tmp_path))
    assert _entries(tmp_path) == []


async def test_redirects_are_followed_and_checked(server: FileServer, tmp_path: Path) -> None:
    server.add("/real.json", b"[1]")
    server.fail_next("/moved.json", Redirect("/real.json", 301))
    await fetch_urls([server.url("/moved.json")], _settings(tmp_path))
    assert (tmp_path / "moved.json").read_bytes() == b"[1]"

    server.fail_next("/evil.json", Redirect("http://169.254.169.254/latest/meta-data"))
    with pytest.raises(UrlRefusedError, match="cloud metadata address"):
        await fetch_urls([server.url("/evil.json")], _settings(tmp_path))


async def test_loopback_is_refused_without_allow_local(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/a.json", b"[]")
    with pytest.raises(UrlRefusedError, match="only with --allow-local"):
        await fetch_urls([url], _settings(tmp_path, allow_local=False))
    assert server.requests == []
