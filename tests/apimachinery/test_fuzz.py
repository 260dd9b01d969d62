"""Coverage-guided fuzzing (atheris) of the decoder, the patch formats and the ``kaito validate``
pipeline, bounded by the shared fuzz budget; each run reports the inputs it tried."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fuzz import fuzz_seconds

pytest.importorskip("atheris")
pytestmark = pytest.mark.fuzz

REPO = Path(__file__).resolve().parents[2]
WORKSPACE = {
    "apiVersion": "kaito.sh/v1beta1",
    "kind": "Workspace",
    "metadata": {"name": "ws", "labels": {"a": "b"}},
    "resource": {
        "instanceType": "Standard_NC24ads_A100_v4",
        "labelSelector": {"matchLabels": {"apps": "phi-4"}},
    },
    "inference": {
        "preset": {"name": "phi-4-mini-instruct"},
        "adapters": [{"source": {"name": "a", "image": "r.io/a:1"}, "strength": "0.5"}],
    },
}
SEEDS = {
    "decode": [
        b"\x00" + json.dumps(WORKSPACE).encode(),
        b"\x01a: &a [1, 2]\nb: [*a, *a]\nc: {<<: {x: 1}, y: yes}\n",
        b"\x02a: 1\n---\nb: 2024-01-01\n---\nc: 0x10\n",
        b'\x00{"a": 1, "a": 2, "n": 99999999999999999999}',
    ],
    "patch": [
        b'\x00\x20{"spec":{"a":1,"tags":["x"]}}\x20{"spec":{"a":null,"b":[1]}}',
        b'\x01\x20{"spec":{"a":[1,2]}}\x40[{"op":"copy","from":"/spec","path":"/x"}]',
        b'\x02\x30{"spec":{"containers":[{"name":"c","image":"i"}]}}'
        b'\x30{"spec":{"containers":[{"name":"c","$patch":"delete"}]}}',
    ],
    "validate": [
        json.dumps(WORKSPACE).encode(),
        b"apiVersion: kaito.sh/v1alpha1\nkind: Workspace\nmetadata: {name: w}\n"
        b"resource: {count: 1.0, labelSelector: {}}\ninference: {preset: {name: phi-4}}\n",
    ],
}


def test_atheris_decode_patch_and_validate(tmp_path: Path) -> None:
    target = "all"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for pick, name in enumerate(("decode", "patch", "validate")):
        for i, seed in enumerate(SEEDS[name]):
            (corpus / f"{name}-{i}").write_bytes(bytes([pick]) + seed)
    seconds = max(1, round(fuzz_seconds()))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.apimachinery.atheris_targets",
            target,
            f"-max_total_time={seconds}",
            "-timeout=10",
            "-rss_limit_mb=1536",
            f"-artifact_prefix={tmp_path}/crash-",  # a failing input lands here, not in the repo
            "-max_len=4096",
            str(corpus),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
    )
    found = [p.read_bytes() for p in tmp_path.glob("crash-*")]
    assert proc.returncode == 0, f"failing inputs {found}: {proc.stderr[-4000:]}"
    done = re.search(r"Done (\d+) runs in (\d+) second", proc.stderr)
    assert done, proc.stderr[-2000:]
    print(f"fuzz atheris {target}: {done.group(1)} inputs in {done.group(2)} s, no failures")
