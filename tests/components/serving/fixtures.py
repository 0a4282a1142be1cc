"""Tiny chat models that say which version they are, and a registry holding them.

`chat_model(dir, version)` takes the align tests' tokenizer (sentencepiece BPE with role tokens and
a chat template that ends the assistant's turn with eos) and a 2-layer LlamaForCausalLM, and
teaches it, in a couple of seconds, one English and one Chinese reply that name its version and
end at eos. So a test can tell from a reply which version answered, and that generation stopped
at eos. `register(client, name, dirs)` logs each directory with `mlflow.transformers.log_model`
as the registry step does (description = model card, `dsllm.*` lineage tags, eval metrics and
`model_card/*.png` on the run) and returns the version numbers.
"""

from __future__ import annotations

from pathlib import Path

from components.home import point_mlflow_at
from components.serving.generate import DEFAULT_SYSTEM
from tests.components.align.fixtures import make_tokenizer

PROMPTS = ("Hello, who are you?", "你好，你是谁？")
WORDS = {1: ("one", "一"), 2: ("two", "二"), 3: ("three", "三")}
CONTEXT = 128


def replies(version: int) -> tuple[str, str]:
    """The English and Chinese replies the model of `version` was taught."""
    en, zh = WORDS[version]
    return f"I am version {en} of the test model.", f"我是第{zh}版测试模型。"


def conversations(version: int) -> list[list[dict]]:
    """Each prompt with and without the demo's default system prompt, answered by this version."""
    convs = []
    for prompt, reply in zip(PROMPTS, replies(version), strict=True):
        for system in ("", DEFAULT_SYSTEM):
            head = [{"role": "system", "content": system}] if system else []
            convs.append([*head, {"role": "user", "content": prompt}, {"role": "assistant", "content": reply}])
    return convs


def tokenizer(directory: Path):
    return make_tokenizer(directory)


def chat_model(directory: Path, version: int, tok, start_from: Path | None = None, steps: int = 300) -> Path:
    """Train a tiny model on its version's conversations until it repeats them greedily; save it.

    `start_from` a model taught another version: only the version word changes, so a few steps do
    (a second model from scratch costs ten times more)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(version)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=CONTEXT,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    model = AutoModelForCausalLM.from_pretrained(start_from) if start_from else LlamaForCausalLM(config)
    model.train()
    batch = _batch(tok, conversations(version))
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3 if start_from else 1e-2)
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
        if loss.item() < 0.03:  # greedy decoding repeats every reply well before this
            break
    model.eval()
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def _batch(tok, convs: list[list[dict]]) -> dict:
    """Padded input ids with labels on the assistant's reply and its eos only."""
    import torch

    rows = []
    for conv in convs:
        prompt = tok.apply_chat_template(conv[:-1], tokenize=True, add_generation_prompt=True,
                                         return_dict=True)["input_ids"]
        reply = tok(conv[-1]["content"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rows.append((list(prompt) + reply, [-100] * len(prompt) + reply))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([i + [tok.pad_token_id] * (width - len(i)) for i, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in rows])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def card_markdown(version: int) -> str:
    return (f"# dsllm-chat v{version}\n\nA test model.\n\n## Scorecard\n\n| task | score |\n|---|---|\n"
            f"| greeting | {0.5 + version / 10:.2f} |\n")


def _plot(path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 2, 3], [3.0, 2.0, 1.5])
    ax.set_title(title)
    fig.savefig(path)
    plt.close(fig)
    return path


def register(tracking_uri: str, name: str, dirs: dict[int, Path], work: Path) -> dict[int, str]:
    """Log each model directory as a version of `name`, like the registry step; {fixture version: registry version}."""
    import mlflow
    from transformers import AutoModelForCausalLM, AutoTokenizer

    point_mlflow_at(tracking_uri)
    # artifacts beside the database, never ./mlruns in the working directory
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("dsllm-test-registry",
                                                                 artifact_location=(work / "artifacts").as_uri()))
    client, versions = mlflow.MlflowClient(tracking_uri, tracking_uri), {}
    for version, directory in dirs.items():
        with mlflow.start_run(run_name=f"register-v{version}") as run:
            parts = {"model": AutoModelForCausalLM.from_pretrained(directory),
                     "tokenizer": AutoTokenizer.from_pretrained(directory)}
            info = mlflow.transformers.log_model(transformers_model=parts, name="model", task="text-generation",
                                                 registered_model_name=name, pip_requirements=["transformers", "torch"])
            mlflow.log_metrics({"eval.greeting.acc": 0.5 + version / 10, "eval.bpb": 2.0 - version / 10})
            (work / f"card-v{version}").mkdir(parents=True, exist_ok=True)
            mlflow.log_artifact(str(_plot(work / f"card-v{version}" / "scorecard.png", "scorecard")), "model_card")
            mlflow.log_artifact(str(_plot(work / f"card-v{version}" / "loss.png", "training loss")), "model_card")
        mv = str(info.registered_model_version)
        client.update_model_version(name, mv, description=card_markdown(version))
        for key, value in {"dsllm.data": f"data-key-{version}", "dsllm.tokenizer": "tok-key",
                           "dsllm.parent_run_id": run.info.run_id, "dsllm.gate": "pending"}.items():
            client.set_model_version_tag(name, mv, key, value)
        versions[version] = mv
    return versions
