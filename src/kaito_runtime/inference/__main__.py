"""Entry point of ``python -m kaito_runtime.inference``."""

from __future__ import annotations

import sys

from kaito_runtime.inference._cli import main

if __name__ == "__main__":
    sys.exit(main())
