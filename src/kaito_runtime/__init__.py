"""What runs inside the pods: the inference server, adapter pull/push, tuning, data fetch.

This package never imports the operator (``kaito``): pods must not pull in controller code.
"""

from __future__ import annotations

__all__: tuple[str, ...] = ()
