"""The runtime image ``kaito up`` gives the local kubelet: its environment, its note, and the
source folder of an editable install bound into the sandbox (a clone under /tmp is invisible
behind the container's private /tmp otherwise)."""

from __future__ import annotations

import sys
from pathlib import Path

from kaito.cluster import ImageTable


def test_the_runtime_image_binds_the_runtime_source_outside_its_environment() -> None:
    table = ImageTable(
        runtime_env={"HF_ENDPOINT": "http://127.0.0.1:5001"},
        runtime_note="weights from kaito up's model hub",
        runtime_paths=("/tmp/clone/src", str(Path(sys.prefix) / "lib")),
    )
    profile = table.resolve("kaito-runtime:0.1.0")
    assert "/tmp/clone/src" in profile.host_paths
    assert str(Path(sys.prefix) / "lib") not in profile.host_paths  # inside a bound folder
    assert profile.env["HF_ENDPOINT"] == "http://127.0.0.1:5001"
    assert profile.runs_as.endswith("; weights from kaito up's model hub")
