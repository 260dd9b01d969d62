"""The user's story on CPU: fetch parquet over HTTP, QLoRA-tune, push with a push secret, pull it
back with the inference side's puller, load it with PEFT and generate.

Every step runs the real pod entrypoint as a process (``python -m kaito_runtime.data``,
``kaito_runtime.tuning``, ``kaito_runtime.adapters``) against real servers on loopback: a
Range-capable HTTP file server and Debian's ``docker-registry`` with htpasswd auth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaito_runtime.oci import pull_adapter
from kaito_runtime.tuning._outputs import ADAPTER_FILES, COMPLETION_FILE, METADATA_FILE
from tests.runtime.data.fileserver import serve_files
from tests.runtime.tuning.helpers import chat_rows, write_config, write_parquet
from tests.runtime.tuning.processes import spawn
from tests.support.registry import run_registry

pytestmark = pytest.mark.registry

PRESET = "phi-3-mini-128k-instruct"
# The guide's dataset path, served from loopback instead of huggingface.co.
DATASET_PATH = (
    "/datasets/philschmid/dolly-15k-oai-style/resolve/main/data/"
    "train-00000-of-00001-54e3756291ca09c6.parquet"
)


def _finish(module: str, args: list[str], termination_log: Path) -> tuple[int, str]:
    proc = spawn(module, args, KAITO_TERMINATION_LOG=str(termination_log))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode is not None
    if proc.returncode != 0:
        print(stderr[-4000:])
    return proc.returncode, stdout


def test_fetch_tune_push_pull_load_generate(tmp_path: Path, tiny_model: Path) -> None:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    termination = tmp_path / "termination-log"
    parquet = write_parquet(tmp_path / "upstream.parquet", chat_rows(32))
    data, out = tmp_path / "mnt" / "data", tmp_path / "mnt" / "results"

    # 1. Init container: fetch the parquet URL (query string and all) into the input directory.
    with serve_files() as files:
        url = files.add(DATASET_PATH, parquet.read_bytes()) + "?download=true"
        code, _ = _finish(
            "kaito_runtime.data",
            ["fetch", "--dest", str(data), "--url", url, "--allow-local"],
            termination,
        )
    assert code == 0, termination.read_text()
    assert [p.name for p in data.iterdir()] == ["train-00000-of-00001-54e3756291ca09c6.parquet"]

    # 2. Tuning container: QLoRA (4-bit NF4 base on CPU) with the preset's default targets.
    config = write_config(
        tmp_path / "training_config.yaml", method="qlora", target_modules=None, max_steps=6
    )
    tune_args = ["--config", str(config), "--data-dir", str(data), "--output-dir", str(out)]
    tune_args += ["--model", str(tiny_model), "--preset", PRESET, "--method", "qlora"]
    code, _ = _finish("kaito_runtime.tuning", [*tune_args, "--metrics-port", "0"], termination)
    assert code == 0, termination.read_text()
    assert termination.read_text().startswith(f"tuning completed: qlora adapter for {PRESET}")
    assert (out / COMPLETION_FILE).exists()
    metadata = json.loads((out / METADATA_FILE).read_text())
    assert (metadata["method"], metadata["steps"], metadata["preset"]) == ("qlora", 6, PRESET)
    assert metadata["dataset_files"] == ["train-00000-of-00001-54e3756291ca09c6.parquet"]

    with run_registry(tmp_path / "registry", auth=("kaito", "push-secret")) as registry:
        image = f"{registry.host}/adapters/{PRESET}-dolly:0.0.1"
        # 3a. A push secret with the wrong password: refused, with the registry's message.
        wrong = tmp_path / "wrong" / "config.json"
        wrong.parent.mkdir()
        wrong.write_text(json.dumps({"auths": {registry.host: {"auth": "a2FpdG86bm9wZQ=="}}}))
        push = ["push", str(out), image, "--model-name", PRESET]
        code, _ = _finish(
            "kaito_runtime.adapters", [*push, "--docker-config", str(wrong)], termination
        )
        assert code != 0
        assert "401" in termination.read_text()

        # 3b. The pusher with the imagePushSecret's docker config: prints the digest.
        secret = registry.docker_config(tmp_path / "push-secret" / "config.json")
        code, stdout = _finish(
            "kaito_runtime.adapters", [*push, "--docker-config", str(secret)], termination
        )
        assert code == 0, termination.read_text()
        digest = stdout.strip().splitlines()[-1]
        assert digest.startswith("sha256:")

        # 4. The inference side's puller.
        pulled = pull_adapter(image, tmp_path / "mnt" / "adapter" / "dolly", docker_config=secret)
    assert pulled.digest == digest
    for name in ADAPTER_FILES:
        assert (pulled.directory / name).read_bytes() == (out / name).read_bytes()

    # 5. Load the pulled adapter with PEFT on the base model and generate.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    prompt: Any = tokenizer.apply_chat_template(
        [{"role": "user", "content": "what does the operator do"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        base_logits = base(**prompt).logits
    tuned: Any = PeftModel.from_pretrained(base, pulled.directory)
    weights = load_file(str(pulled.directory / "adapter_model.safetensors"))
    assert any("qkv_proj" in k for k in weights)
    assert any("gate_up_proj" in k for k in weights)
    with torch.no_grad():
        tuned_logits = tuned(**prompt).logits
        generated = tuned.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert (tuned_logits - base_logits).abs().max().item() > 0
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 5
