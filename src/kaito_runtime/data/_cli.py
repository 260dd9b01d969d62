"""``python -m kaito_runtime.data fetch``: the tuning Job's input init container.

Runtime layer. Exactly one source: ``--url`` (repeatable; else ``$DATA_URLS``, space-separated),
``--volume PATH``, or ``--image IMAGE`` (``--docker-config`` for a private registry). The
destination is ``--dest`` (else ``$DATA_VOLUME_PATH``, else ``/mnt/data``), as upstream's
downloader.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from pathlib import Path

import anyio
import structlog

from kaito_runtime.contract import DATA_DIR, DATA_MODULE, DataFlags
from kaito_runtime.data._download import DEFAULT_MAX_BYTES, FetchedFile, FetchSettings, fetch_urls
from kaito_runtime.data._image import pull_data_image
from kaito_runtime.data._volume import copy_volume
from kaito_runtime.logs import configure_logging
from kaito_runtime.tuning import ConfigError, run_main

__all__ = ("build_parser", "main", "parse_size")

log = structlog.get_logger(__name__)

DEFAULT_DEST = DATA_DIR
ALLOW_LOCAL_ENV = "KAITO_ALLOW_LOCAL_URLS"
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}


def parse_size(text: str) -> int:
    """Parse ``10GiB``, ``500M``, ``1024``... into bytes (``Ki``/``Mi``/``Gi`` are binary)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; use e.g. 10GiB or 500MB")
    number, unit = float(match.group(1)), (match.group(2) or "").upper().rstrip("B")
    factor = 1024 ** ("KMGT".index(unit[0]) + 1) if unit.endswith("I") else _UNITS[unit]
    return int(number * factor)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``fetch`` command."""
    flags = DataFlags
    parser = argparse.ArgumentParser(
        prog=f"python -m {DATA_MODULE}", description="Fetch tuning input data."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser(flags.FETCH, help="download URLs, pull an image or copy a volume")
    fetch.add_argument(flags.DEST, type=Path, help="input directory (default $DATA_VOLUME_PATH)")
    source = fetch.add_mutually_exclusive_group()
    source.add_argument(flags.URL, action="extend", nargs="+", default=None, help="http(s) URL")
    source.add_argument(flags.VOLUME, type=Path, help="mounted volume holding the dataset")
    source.add_argument(flags.IMAGE, help="image holding the dataset under /data")
    fetch.add_argument(
        flags.DOCKER_CONFIG, type=Path, help="docker config.json with the image's pull credentials"
    )
    fetch.add_argument(
        flags.ALLOW_LOCAL,
        action="store_true",
        help="allow loopback and private hosts (local development only)",
    )
    fetch.add_argument("--max-bytes", type=parse_size, default=DEFAULT_MAX_BYTES)
    fetch.add_argument("--attempts", type=int, default=5)
    fetch.add_argument("--progress-interval", type=float, default=5.0)
    fetch.add_argument("--concurrency", type=int, default=4)
    return parser


def _fetch(args: argparse.Namespace) -> str:
    dest = args.dest or Path(os.environ.get("DATA_VOLUME_PATH") or DEFAULT_DEST)
    allow_local = args.allow_local or os.environ.get(ALLOW_LOCAL_ENV, "").lower() == "true"
    files: list[FetchedFile]
    if args.volume is not None:
        dest.mkdir(parents=True, exist_ok=True)
        files = copy_volume(args.volume, dest)
    elif args.image is not None:
        files = pull_data_image(args.image, dest, args.docker_config)
    else:
        urls = args.url or os.environ.get("DATA_URLS", "").split()
        if not urls:
            raise ConfigError(
                "no input given; pass --url URL..., --volume PATH or --image IMAGE "
                "(or set DATA_URLS)"
            )
        settings = FetchSettings(
            dest=dest,
            allow_local=allow_local,
            max_bytes=args.max_bytes,
            attempts=max(1, args.attempts),
            progress_interval=args.progress_interval,
            concurrency=max(1, args.concurrency),
        )
        files = anyio.run(fetch_urls, urls, settings, backend="asyncio")
    total = sum(f.size for f in files)
    log.info("fetch_completed", dest=str(dest), files=len(files), bytes=total)
    return f"fetched {len(files)} file(s), {total} bytes, into {dest}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit code (the termination message is written)."""
    args = build_parser().parse_args(argv)
    configure_logging()
    return run_main(lambda: _fetch(args))
