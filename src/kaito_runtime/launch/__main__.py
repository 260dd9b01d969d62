"""Entry point: ``python -m kaito_runtime.launch``."""

from __future__ import annotations

import sys

from kaito_runtime.launch._cli import main

if __name__ == "__main__":
    sys.exit(main())
