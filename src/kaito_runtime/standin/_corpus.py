"""The text a stand-in's tokenizer learns from, and the guide's small conversational dataset.

Runtime layer (pure data, deterministic). The conversations are short questions about KAITO with
factual answers; they are both the local guide's tuning data (``messages`` in OpenAI style, as
the guide's dolly-15k-oai-style dataset has them) and part of the tokenizer's corpus, so a
stand-in tokenizes them in sensible pieces.
"""

from __future__ import annotations

from typing import Final

__all__ = ("GUIDE_SYSTEM_PROMPT", "guide_conversations", "tokenizer_corpus")

GUIDE_SYSTEM_PROMPT: Final = "You are a helpful assistant who knows Kubernetes and KAITO."

_FACTS: Final = (
    ("What is KAITO?",
     "KAITO is the Kubernetes AI Toolchain Operator. It runs and tunes large language models "
     "on Kubernetes from one Workspace resource."),
    ("What does a Workspace describe?",
     "A Workspace names the GPU instance type, a label selector for its nodes, and either an "
     "inference preset or a tuning job."),
    ("How does KAITO get GPU nodes?",
     "The node provisioner adds GPU nodes of the Workspace's instance type, for example through "
     "the gpu-provisioner or Karpenter."),
    ("Which port does the inference service listen on?",
     "The Service listens on port 80 and forwards to the model server on port 5000."),
    ("How do I call the model?",
     "Send a POST request to the Service's /chat endpoint or use the OpenAI compatible "
     "/v1/chat/completions endpoint."),
    ("What is LoRA?",
     "LoRA trains small low-rank adapter matrices beside the frozen model weights, so tuning "
     "needs far less memory."),
    ("What is QLoRA?",
     "QLoRA loads the base model in 4-bit precision and trains LoRA adapters on top of it."),
    ("Where does the tuned adapter go?",
     "The tuning job pushes the adapter as an OCI image to the registry named in "
     "output.image, with the imagePushSecret credentials."),
    ("How does inference use an adapter?",
     "List the adapter image under inference.adapters; an init container pulls it and the "
     "server loads it with the given strength."),
    ("How do I watch a Workspace?",
     "Run kubectl get workspace and wait until WORKSPACESUCCEEDED or WORKSPACEREADY is True."),
    ("What is a preset?",
     "A preset is a model KAITO knows how to run, such as phi-3-mini-128k-instruct, with its "
     "GPU memory needs and default settings."),
    ("Why use a cluster IP?",
     "A cluster IP is a stable address of the Service inside the cluster, balanced over the "
     "ready model pods."),
)  # fmt: skip

_OPENERS: Final = ("", "Please tell me: ", "Quick question. ", "I wonder: ")


def guide_conversations() -> list[list[dict[str, str]]]:
    """The guide's tuning data: 48 conversations (system, user, assistant), always the same."""
    rows = []
    for round_, opener in enumerate(_OPENERS):
        for index, (question, answer) in enumerate(_FACTS):
            asked = opener + (question if not opener else question[0].lower() + question[1:])
            said = answer if (round_ + index) % 2 == 0 else f"{answer} Happy to help."
            rows.append(
                [
                    {"role": "system", "content": GUIDE_SYSTEM_PROMPT},
                    {"role": "user", "content": asked},
                    {"role": "assistant", "content": said},
                ]
            )
    return rows


_WORDS: Final = (
    "the model serves answers to every request on the node",
    "a cluster schedules pods onto nodes with enough memory and gpus",
    "the operator watches workspaces and reconciles them until they are ready",
    "tuning trains an adapter and pushes it as an image to a registry",
    "hello world how are you today thank you very much",
    "kubernetes runs containers, services balance traffic over ready endpoints",
    "numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000 and symbols : ; , . ? ! ' \" ( ) [ ] { } / - _",
    "what who where when why how which can could should would is are was were be",
    "question answer prompt completion token tokens text chat message role system user",
)


def tokenizer_corpus() -> list[str]:
    """Deterministic English-like text plus the guide's conversations."""
    lines = [line for line in _WORDS for _ in range(3)]
    for conversation in guide_conversations():
        lines += [message["content"] for message in conversation]
    return lines
