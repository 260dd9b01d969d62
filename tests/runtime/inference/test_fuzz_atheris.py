"""Coverage-guided fuzzing of request handling with atheris, bounded by the fuzz budget.

The target (``atheris_requests.py``) runs in a subprocess, as libFuzzer exits the process when it
is done; it starts from a corpus of valid requests and a dictionary of the API's words and hostile
tokens. Marker ``fuzz``: a few seconds in the default run, ``nox -s fuzz`` for longer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fuzz import fuzz_seconds

pytest.importorskip("atheris")

pytestmark = pytest.mark.fuzz

SEEDS = {
    0: {"prompt": "the operator schedules", "max_tokens": 4, "stop": ["ab", "\n"], "echo": True},
    1: {
        "messages": [{"role": "user", "content": "hello kaito"}],
        "max_tokens": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    },
    2: {"prompt": "hi", "generate_kwargs": {"max_new_tokens": 3, "do_sample": False}},
}
WORDS = [
    '"prompt"', '"messages"', '"role"', '"content"', '"user"', '"assistant"', '"type"',
    '"text"', '"model"', '"max_tokens"', '"min_tokens"', '"max_completion_tokens"', '"stop"',
    '"stream"', '"stream_options"', '"include_usage"', '"echo"', '"seed"', '"temperature"',
    '"top_p"', '"top_k"', '"repetition_penalty"', '"generate_kwargs"', '"max_new_tokens"',
    '"max_length"', '"num_beams"', '"n"', '"logprobs"', '"\\ud800"', '"\\ud83d\\ude00"', "NaN",
    "Infinity", "1e999", "-1", "9223372036854775808", "true", "null", "[]", "{}", '"<|end|>"',
]  # fmt: skip


def test_coverage_guided_fuzzing_finds_no_failing_request(tiny_model: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for route, body in SEEDS.items():
        (corpus / f"seed-{route}").write_bytes(bytes([route]) + json.dumps(body).encode())
    dictionary = tmp_path / "words.dict"
    dictionary.write_text("".join(f"w{i}={json.dumps(w)}\n" for i, w in enumerate(WORDS)))
    seconds = max(1, round(fuzz_seconds()))
    crashes = tmp_path / "crash-"
    command = [
        sys.executable, "-m", "tests.runtime.inference.atheris_requests", str(tiny_model),
        f"-max_total_time={seconds}", "-timeout=20", "-rss_limit_mb=4096", "-max_len=4096",
        f"-dict={dictionary}", f"-artifact_prefix={crashes}", str(corpus),
    ]  # fmt: skip
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
    done = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        env=env,
        cwd=root,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    runs = re.search(r"Done (\d+) runs in (\d+) second", output)
    assert runs, output[-2000:]
    print(f"fuzz atheris requests: {runs.group(1)} inputs in {runs.group(2)} s, no failures")
    assert int(runs.group(1)) > len(SEEDS)
