"""Entry point of ``python -m kaito_runtime.adapters``."""

from __future__ import annotations

import sys

from kaito_runtime.adapters._cli import main

if __name__ == "__main__":
    sys.exit(main())
