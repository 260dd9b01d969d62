"""Unknown keys that look like path punctuation are reported as unknown fields, never a crash."""

from __future__ import annotations

import pytest

from kaito.api import check_workspace


@pytest.mark.parametrize("key", ["...", ".", "a.", "[0]"])
def test_an_unknown_key_of_path_punctuation_is_an_unknown_field(key: str) -> None:
    # Found by the atheris target: the key "..." raised IndexError while the unknown-field
    # error looked for a spelling hint.
    doc = {"apiVersion": "kaito.sh/v1beta1", "kind": "Workspace", "metadata": {"name": "w"}, key: 1}
    result = check_workspace(doc)
    assert any("field not declared in the schema" in str(e) for e in result.errors)
