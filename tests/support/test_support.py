"""The test-support helpers work: a tiny model loads and generates; the registry serves."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.fuzz import FuzzBudget
from tests.support.registry import run_registry
from tests.support.tiny_model import build_tiny_model


@pytest.mark.registry
def test_registry_requires_the_configured_credentials(tmp_path: Path) -> None:
    with run_registry(tmp_path / "reg", auth=("alice", "s3cret")) as reg:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://{reg.host}/v2/")
        assert err.value.code == 401
        config = json.loads(reg.docker_config(tmp_path / "docker" / "config.json").read_text())
        req = urllib.request.Request(f"http://{reg.host}/v2/")
        req.add_header("Authorization", "Basic " + config["auths"][reg.host]["auth"])
        assert urllib.request.urlopen(req).status == 200
        assert base64.b64decode(config["auths"][reg.host]["auth"]) == b"alice:s3cret"


def test_tiny_model_loads_through_auto_classes(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = build_tiny_model(tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert model.config.model_type == "phi3"
    assert model.config.hidden_size // model.config.num_attention_heads == 64
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "hello"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == enc["input_ids"].shape[1] + 3


def test_the_fuzz_budget_runs_its_minimum_then_stops_on_time() -> None:
    now = [0.0]
    budget = FuzzBudget(seconds=1.0, clock=lambda: now[0], minimum=3)
    now[0] = 5.0  # the time is spent before the first input
    assert [budget.spend() for _ in range(5)] == [True, True, True, False, False]
    assert budget.tried == 3
    fresh = FuzzBudget(seconds=1.0, clock=lambda: now[0], minimum=0)
    assert fresh.spend() is True  # created at 5.0: a whole second left
    now[0] = 6.5
    assert fresh.spend() is False
