"""Entry point: ``python -m kaito_runtime.standin build|dataset ...``."""

from __future__ import annotations

import sys

from kaito_runtime.standin._cli import main

if __name__ == "__main__":
    sys.exit(main())
