"""kaito: the Kubernetes AI Toolchain Operator, in Python.

Layers, from the bottom up (import-linter checks that imports only flow downward):

- ``kaito.api`` and ``kaito.catalog``: the Workspace types, validation, defaults, presets, GPU SKUs.
- ``kaito.engine``: the framework-free asyncio reconcile engine (knows nothing of Workspaces).
- ``kaito.controllers`` and ``kaito.webhooks``: the Workspace controllers and admission.
- ``kaito.cluster``: the in-process Kubernetes cluster (``kaito up``, integration tests).
- ``kaito.embedded`` and ``kaito.testing``: KAITO on that cluster, and the thin kit tests import.
- ``kaito.cli``: the ``kaito`` command.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ("__version__",)
