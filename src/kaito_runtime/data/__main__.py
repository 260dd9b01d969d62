"""Entry point: ``python -m kaito_runtime.data fetch ...``."""

from __future__ import annotations

import sys

from kaito_runtime.data._cli import main

if __name__ == "__main__":
    sys.exit(main())
