"""Entry point: ``python -m kaito_runtime.tuning``."""

from __future__ import annotations

import sys

from kaito_runtime.tuning._cli import main

if __name__ == "__main__":
    sys.exit(main())
