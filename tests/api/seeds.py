"""The Workspace YAML of the user's guide (../shared/seeds), extracted from its five translations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO.parent / "shared" / "seeds"
EXAMPLES = REPO / "examples"

# The guide's placeholders, as a user replaces them before applying.
PLACEHOLDERS = {
    "ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1": "myregistry.azurecr.io/phi-3-adapter:0.0.1",
    "ACR_REPO_HERE.azurecr.io/ADAPTER_HERE:0.0.1": "myregistry.azurecr.io/phi-3-adapter:0.0.1",
    "ACR_REGISTRY_SECRET_HERE": "acr-registry-secret",
}


def seed_documents() -> list[tuple[str, str]]:
    """Every Workspace YAML block of the guide as ``(id, text)``, duplicates removed."""
    found: dict[str, str] = {}
    for path in sorted(SEEDS.glob("*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            if lines[i].startswith("apiVersion: kaito.sh/"):
                block = []
                while i < len(lines) and not lines[i].startswith(("```", "$")):
                    block.append(lines[i])
                    i += 1
                text = "\n".join(block).rstrip() + "\n"
                name = yaml.safe_load(text)["metadata"]["name"]
                found.setdefault(text, f"{path.name[:3]}-{name}-{len(found)}")
            else:
                i += 1
    if not found:
        raise FileNotFoundError(f"no Workspace YAML found in the guide at {SEEDS}")
    return [(ident, text) for text, ident in found.items()]


def with_placeholders_filled(text: str) -> str:
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    return text


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    """The guide's examples (``examples/local`` is the guide on one machine: tests/guide)."""
    return [
        (str(p.relative_to(EXAMPLES)), yaml.safe_load(p.read_text()))
        for p in sorted(EXAMPLES.rglob("*.yaml"))
        if p.relative_to(EXAMPLES).parts[0] != "local"
    ]
