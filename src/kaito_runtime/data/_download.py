"""Streaming HTTP(S) downloads with resume, retries, a size cap and progress lines.

Runtime layer (tuning Job init container). Each URL is written to ``<name>.part`` and renamed to
its final name only when complete, so nothing partial ever sits under a final name. A restarted
container resumes a ``.part`` with an HTTP ``Range`` request (guarded by ``If-Range`` with the
validator the server sent first), and skips files that are already complete.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, Any

import aiohttp
import anyio
import attrs
import structlog
from yarl import URL

from kaito_runtime.data._errors import DownloadError, FetchError, SizeLimitError
from kaito_runtime.data._naming import PART_SUFFIX, file_names_for
from kaito_runtime.data._policy import GuardedResolver, UrlPolicy
from kaito_runtime.data._progress import ProgressReporter

__all__ = ("DEFAULT_MAX_BYTES", "FetchSettings", "FetchedFile", "fetch_urls")

log = structlog.get_logger(__name__)

GiB = 1024**3
DEFAULT_MAX_BYTES = 10 * GiB
META_SUFFIX = ".part.meta"
USER_AGENT = "kaito-data-fetch/1"
WRITE_BUFFER = 1 << 20
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")

Sleep = Callable[[float], Awaitable[None]]


@attrs.frozen
class FetchSettings:
    """How URLs are fetched; every limit is explicit so the Job spec can set it."""

    dest: Path
    allow_local: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    progress_interval: float = 5.0
    concurrency: int = 4
    connect_timeout: float = 30.0
    read_timeout: float = 60.0
    max_redirects: int = 10


@attrs.frozen
class FetchedFile:
    """One completed download: where it landed, its size, and where it resumed from."""

    url: str
    path: Path
    size: int
    resumed_from: int = 0
    skipped: bool = False


@attrs.frozen
class _Target:
    url: str
    final: Path
    part: Path
    meta: Path

    async def part_size(self) -> int:
        part = anyio.Path(self.part)
        return (await part.stat()).st_size if await part.exists() else 0

    async def discard_part(self) -> None:
        await anyio.Path(self.part).unlink(missing_ok=True)
        await anyio.Path(self.meta).unlink(missing_ok=True)


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """Return (start, total) from ``bytes START-END/TOTAL`` or ``bytes */TOTAL``."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        return None, None
    start = int(match.group(1)) if match.group(1) else None
    total = int(match.group(3)) if match.group(3) != "*" else None
    return start, total


class _Downloader:
    def __init__(
        self,
        settings: FetchSettings,
        session: aiohttp.ClientSession,
        *,
        sleep: Sleep,
        clock: Callable[[], float],
        jitter: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.policy = UrlPolicy(allow_local=settings.allow_local)
        self.session = session
        self.sleep = sleep
        self.clock = clock
        self.jitter = jitter

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (half fixed, half random), capped."""
        s = self.settings
        ceiling = min(s.backoff_max, s.backoff_base * 2.0 ** (attempt - 1))
        delay = ceiling / 2 + self.jitter() * ceiling / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, s.backoff_max * 4))
        return delay

    async def fetch(self, url: str, name: str) -> FetchedFile:
        final = self.settings.dest / name
        if await anyio.Path(final).exists():
            size = (await anyio.Path(final).stat()).st_size
            log.info("download_skipped_complete", url=url, file=str(final))
            return FetchedFile(url=url, path=final, size=size, skipped=True)
        self.policy.check_url(url)
        target = _Target(
            url=url,
            final=final,
            part=final.with_name(name + PART_SUFFIX),
            meta=final.with_name(name + META_SUFFIX),
        )
        attempts = self.settings.attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._attempt(target)
            except _Retryable as exc:
                if attempt == attempts:
                    raise DownloadError(
                        f"could not download input URL {url!r} after {attempts} attempts: "
                        f"{exc}; check that the URL is reachable from the cluster"
                    ) from None
                delay = self.backoff(attempt, exc.retry_after)
                log.warning(
                    "download_retry",
                    url=url,
                    attempt=attempt,
                    attempts=attempts,
                    delay_seconds=round(delay, 2),
                    reason=str(exc),
                )
                await self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _open(self, url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """GET ``url``, following redirects itself so every hop passes the policy."""
        current = URL(url, encoded=True)
        for _ in range(self.settings.max_redirects + 1):
            try:
                resp = await self.session.get(current, headers=headers, allow_redirects=False)
            except aiohttp.ClientConnectorError as exc:
                raise _Retryable(f"cannot connect to {current.host}: {exc.os_error}") from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from None
            location = resp.headers.get("Location")
            if resp.status not in REDIRECTS or not location:
                return resp
            resp.release()
            current = current.join(URL(location, encoded=True))
            self.policy.check_url(str(current))
            log.debug("download_redirect", url=url, to=str(current))
        raise DownloadError(
            f"input URL {url!r} redirected more than {self.settings.max_redirects} times; "
            "use the final URL"
        )

    async def _attempt(self, target: _Target) -> FetchedFile:
        url = target.url
        offset = await target.part_size()
        headers = {"Accept-Encoding": "identity", "User-Agent": USER_AGENT}
        validator = _read_validator(target.meta) if offset else None
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator:
                headers["If-Range"] = validator
        resp = await self._open(url, headers)
        async with resp:
            status = resp.status
            if status == 416 and offset:
                _, total = _parse_content_range(resp.headers.get("Content-Range"))
                if total == offset:
                    return await self._finalize(target, offset, offset, None)
                await target.discard_part()
                raise _Retryable("the server refused to resume the partial file; restarting")
            if status in (408, 429) or status >= 500:
                raise _Retryable(
                    f"HTTP {status} {resp.reason}",
                    _parse_retry_after(resp.headers.get("Retry-After")),
                )
            if status >= 400:
                raise DownloadError(
                    f"input URL {url!r} answered HTTP {status} {resp.reason}; "
                    "check the URL and that it is publicly readable"
                )
            if status == 206:
                start, total = _parse_content_range(resp.headers.get("Content-Range"))
                if start != offset:
                    await target.discard_part()
                    raise _Retryable(f"the server resumed at byte {start}, not {offset}")
            elif status == 200:
                offset = 0
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            else:
                raise DownloadError(
                    f"input URL {url!r} answered HTTP {status} {resp.reason} without a body; "
                    "check the URL"
                )
            self._check_size(url, total)
            _write_validator(target.meta, resp.headers)
            resumed_from = offset
            if offset:
                log.info("download_resumed", url=url, file=str(target.final), offset=offset)
            reporter = ProgressReporter(
                url=url,
                file=target.final.name,
                start_bytes=offset,
                total=total,
                interval=self.settings.progress_interval,
                clock=self.clock,
            )
            await self._stream(target, resp, append=offset > 0, reporter=reporter)
            size = reporter.bytes
            if total is not None and size != total:
                raise _Retryable(f"the connection closed at byte {size} of {total}")
            return await self._finalize(target, size, resumed_from, reporter)

    def _check_size(self, url: str, size: int | None) -> None:
        cap = self.settings.max_bytes
        if size is not None and size > cap:
            raise SizeLimitError(
                f"input URL {url!r} is {size} bytes, over the {cap}-byte limit; "
                "raise --max-bytes or split the dataset"
            )

    async def _stream(
        self,
        target: _Target,
        resp: aiohttp.ClientResponse,
        *,
        append: bool,
        reporter: ProgressReporter,
    ) -> None:
        part = target.part
        fh: IO[bytes] = await anyio.to_thread.run_sync(part.open, "ab" if append else "wb")
        buffer = bytearray()
        try:
            try:
                async for chunk in resp.content.iter_chunked(256 * 1024):
                    buffer += chunk
                    reporter.advance(len(chunk))
                    if reporter.bytes > self.settings.max_bytes:
                        break
                    if len(buffer) >= WRITE_BUFFER:
                        await self._write(fh, buffer, part)
                        buffer = bytearray()
            except (aiohttp.ClientError, TimeoutError) as exc:
                await self._write(fh, buffer, part)
                raise _Retryable(f"the transfer broke at byte {reporter.bytes}: {exc}") from None
            await self._write(fh, buffer, part)
            await anyio.to_thread.run_sync(os.fsync, fh.fileno())
        finally:
            await anyio.to_thread.run_sync(fh.close)
        if reporter.bytes > self.settings.max_bytes:
            await target.discard_part()
            self._check_size(target.url, reporter.bytes)

    async def _write(self, fh: IO[bytes], data: bytearray, part: Path) -> None:
        if not data:
            return
        try:
            await anyio.to_thread.run_sync(fh.write, bytes(data))
        except OSError as exc:
            raise FetchError(
                f"cannot write {part}: {exc.strerror}; give the data volume more space"
            ) from None

    async def _finalize(
        self,
        target: _Target,
        size: int,
        resumed_from: int,
        reporter: ProgressReporter | None,
    ) -> FetchedFile:
        url = target.url
        if size == 0:
            await target.discard_part()
            raise DownloadError(f"input URL {url!r} returned an empty file; check the URL")
        await anyio.Path(target.part).rename(target.final)
        await anyio.Path(target.meta).unlink(missing_ok=True)
        if reporter is not None:
            reporter.finish()
        return FetchedFile(url=url, path=target.final, size=size, resumed_from=resumed_from)


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """Return the first fetch error in a task-group failure (else the first leaf)."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            pending[:0] = list(exc.exceptions)
        else:
            leaves.append(exc)
    for leaf in leaves:
        if isinstance(leaf, FetchError):
            return leaf
    return leaves[0]


def _read_validator(meta: Path) -> str | None:
    try:
        data: Any = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    value = data.get("validator") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _write_validator(meta: Path, headers: Any) -> None:
    etag = headers.get("ETag")
    strong_etag = etag if etag and not etag.startswith("W/") else None
    validator = strong_etag or headers.get("Last-Modified")
    if validator:
        meta.write_text(json.dumps({"validator": validator}))


async def fetch_urls(
    urls: Sequence[str],
    settings: FetchSettings,
    *,
    sleep: Sleep = anyio.sleep,
    clock: Callable[[], float] = time.monotonic,
    jitter: Callable[[], float] = random.random,
) -> list[FetchedFile]:
    """Download every URL into ``settings.dest`` and return the files, in URL order.

    Idempotent: a completed file is skipped, a ``.part`` is resumed. Transient failures
    (connection errors, timeouts, 408/429/5xx) are retried with jittered exponential backoff;
    other 4xx answers, refused URLs and size-cap breaches fail at once. The first failure
    cancels the other downloads (their ``.part`` files stay for the next attempt).
    """
    if not urls:
        raise FetchError("no input URLs were given; pass --url or set DATA_URLS")
    policy = UrlPolicy(allow_local=settings.allow_local)
    for url in urls:
        policy.check_url(url)
    settings.dest.mkdir(parents=True, exist_ok=True)
    names = file_names_for(urls)
    results: list[FetchedFile | None] = [None] * len(urls)
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy), use_dns_cache=False, limit=settings.concurrency
    )
    timeout = aiohttp.ClientTimeout(
        total=None, connect=settings.connect_timeout, sock_read=settings.read_timeout
    )
    limiter = anyio.CapacityLimiter(settings.concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False, trust_env=False
    ) as session:
        downloader = _Downloader(settings, session, sleep=sleep, clock=clock, jitter=jitter)

        async def one(index: int) -> None:
            async with limiter:
                results[index] = await downloader.fetch(urls[index], names[index])

        try:
            async with anyio.create_task_group() as tg:
                for index in range(len(urls)):
                    tg.start_soon(one, index)
        except BaseExceptionGroup as group:
            raise _first_leaf(group) from None
    return [r for r in results if r is not None]
