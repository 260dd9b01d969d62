"""The launcher's errors: each carries the exit code and a message saying what to change.

Runtime layer (launcher).
"""

from __future__ import annotations

__all__ = ("EXIT_CONFIG", "EXIT_FAILED", "EXIT_TERMINATED", "LaunchError")

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_TERMINATED = 128 + 15  # stopped by SIGTERM (pod deletion), as a shell reports it


class LaunchError(Exception):
    """A launch that cannot go on; ``str()`` is the one-line termination message."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code
