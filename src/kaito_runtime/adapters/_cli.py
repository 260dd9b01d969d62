"""``python -m kaito_runtime.adapters``: push and pull adapter images (init and sidecar containers).

``pull IMAGE DIR`` is what the inference pod's init container runs for each image adapter (DIR is
``/mnt/adapter/<name>``); ``push DIR IMAGE`` is what the tuning pod's pusher runs. A failure exits
non-zero with one line on stderr, also written to the termination-message file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from kaito_runtime.adapters._termination import write_termination_message
from kaito_runtime.contract import ADAPTERS_MODULE, AdapterFlags
from kaito_runtime.logs import configure_logging
from kaito_runtime.oci import OCIError, pull_adapter, push_adapter

__all__ = ("build_parser", "main")

EXIT_FAILURE = 1


def _default_docker_config() -> str | None:
    configured = os.environ.get("DOCKER_CONFIG")
    if configured and Path(configured).exists():
        return configured
    return None


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``pull`` and ``push`` commands."""
    flags = AdapterFlags
    parser = argparse.ArgumentParser(
        prog=f"python -m {ADAPTERS_MODULE}",
        description="Push and pull LoRA adapters as OCI images (upstream KAITO layout).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            flags.DOCKER_CONFIG,
            default=_default_docker_config(),
            help="docker config.json, .dockerconfigjson, or a directory holding one "
            "(default: $DOCKER_CONFIG; anonymous if unset)",
        )
        sub.add_argument(
            flags.PLAIN_HTTP,
            action=argparse.BooleanOptionalAction,
            default=None,
            help="talk HTTP instead of HTTPS (default: HTTP only for loopback registries)",
        )

    pull = commands.add_parser(flags.PULL, help="pull IMAGE and write its adapter files into DIR")
    pull.add_argument("image")
    pull.add_argument("dir", type=Path)
    common(pull)

    push = commands.add_parser(flags.PUSH, help="package the adapter in DIR and push it as IMAGE")
    push.add_argument("dir", type=Path)
    push.add_argument("image")
    push.add_argument(flags.MODEL_NAME, help="base model (preset) name, sh.kaito.model.name")
    common(push)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        if args.command == AdapterFlags.PULL:
            pulled = pull_adapter(
                args.image, args.dir, docker_config=args.docker_config, plain_http=args.plain_http
            )
            print(
                f"pulled {pulled.image}@{pulled.digest} into {pulled.directory}: "
                + ", ".join(pulled.files)
            )
        else:
            digest = push_adapter(
                args.dir,
                args.image,
                docker_config=args.docker_config,
                model_name=args.model_name,
                plain_http=args.plain_http,
            )
            print(digest)
    except (OCIError, OSError) as err:
        message = f"adapter {args.command} failed: {err}"
        print(message, file=sys.stderr)
        write_termination_message(message)
        return EXIT_FAILURE
    return 0
