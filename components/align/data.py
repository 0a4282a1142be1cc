"""Conversational data for SFT and DPO from the formats people actually have.

Every record becomes either an SFT example `{"messages": [{"role", "content"}, ...]}` or a DPO
pair `{"prompt": [...], "chosen": [...], "rejected": [...]}` (TRL's conversational formats).
Accepted inputs: Alpaca (instruction/input/output[/system]), ShareGPT (`conversations` of
from/value), OpenAI-style `messages`, preference pairs (`conversations`/`chosen`/`rejected` or
`prompt`/`chosen`/`rejected`) and GSM8K (question/answer). `gsm8k_train` is an optional set (no
registry carries it): it raises `NotAvailable` unless `$DSLLM_BENCHMARKS` holds it, and the
preparation skips it with one line. `dpo_language` is derived from the demo
preference sets (see `language_pairs`). A record that fits no format, or has
missing or empty fields, is quarantined with its reason; nothing is dropped silently.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.names import did_you_mean
from components.sources.archives import package_dir
from components.sources.benchmarks import NotAvailable, extra_file

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
         "system": "system", "bot": "assistant"}


class BadRecord(ValueError):
    """A record that cannot become a conversation; the message is the quarantine reason."""


@dataclass
class Loaded:
    """Converted records plus the quarantined ones and their reasons."""

    records: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)

    @property
    def reasons(self) -> Counter:
        return Counter(q["reason"] for q in self.quarantined)


def _text(value: Any, what: str) -> str:
    if isinstance(value, list):  # content parts: [{"type": "text", "text"/"value": ...}]
        value = "".join(str(p.get("text", p.get("value", ""))) for p in value if isinstance(p, dict))
    if not isinstance(value, str) or not value.strip():
        raise BadRecord(f"empty or missing {what}")
    return value


def _turn(turn: Any) -> dict:
    if not isinstance(turn, dict):
        raise BadRecord("turn is not an object")
    role = ROLES.get(str(turn.get("from", turn.get("role", ""))).lower())
    if role is None:
        raise BadRecord(f"unknown role {turn.get('from', turn.get('role'))!r}")
    return {"role": role, "content": _text(turn.get("value", turn.get("content")), f"{role} content")}


def _turns(turns: Any) -> list[dict]:
    if not isinstance(turns, list) or not turns:
        raise BadRecord("conversation is not a non-empty list")
    return [_turn(t) for t in turns]


def _check_dialogue(messages: list[dict]) -> list[dict]:
    if messages[-1]["role"] != "assistant":
        raise BadRecord("conversation does not end with an assistant turn")
    if not any(m["role"] == "user" for m in messages):
        raise BadRecord("conversation has no user turn")
    return messages


def to_sft(record: dict) -> dict:
    """One SFT example from an Alpaca, ShareGPT, messages or GSM8K record."""
    if "instruction" in record:
        prompt = _text(record["instruction"], "instruction")
        if str(record.get("input") or "").strip():
            prompt = f"{prompt}\n\n{record['input']}"
        messages = [{"role": "user", "content": prompt},
                    {"role": "assistant", "content": _text(record.get("output"), "output")}]
        if str(record.get("system") or "").strip():
            messages.insert(0, {"role": "system", "content": record["system"]})
    elif "question" in record and "answer" in record:
        messages = [{"role": "user", "content": _text(record["question"], "question")},
                    {"role": "assistant", "content": _gsm8k_answer(_text(record["answer"], "answer"))}]
    elif "conversations" in record or "messages" in record:
        messages = _turns(record.get("conversations", record.get("messages")))
    else:
        raise BadRecord(f"unknown SFT format (keys: {sorted(record)[:6]})")
    return {"messages": _check_dialogue(messages)}


def _gsm8k_answer(answer: str) -> str:
    """GSM8K's `<<48/2=24>>` calculator notes removed; the final `#### n` kept as 'The answer is n.'"""
    import re

    reasoning, _, final = answer.partition("####")
    reasoning = re.sub(r"<<[^>]*>>", "", reasoning).strip()
    return f"{reasoning}\nThe answer is {final.strip()}." if final.strip() else reasoning


def to_dpo(record: dict) -> dict:
    """One preference pair from `conversations`/`prompt` + `chosen` + `rejected`."""
    if "chosen" not in record or "rejected" not in record:
        raise BadRecord("preference record lacks chosen or rejected")
    if "conversations" in record:
        prompt = _turns(record["conversations"])
    elif isinstance(record.get("prompt"), str):
        prompt = [{"role": "user", "content": _text(record["prompt"], "prompt")}]
    else:
        prompt = _turns(record.get("prompt"))
    if prompt[-1]["role"] != "user":
        raise BadRecord("preference prompt does not end with a user turn")
    return {"prompt": prompt, "chosen": _answer(record["chosen"], "chosen"),
            "rejected": _answer(record["rejected"], "rejected")}


def _answer(value: Any, what: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": _text(value, what)}]
    turns = [_turn(value)] if isinstance(value, dict) else _turns(value)
    if turns[-1]["role"] != "assistant":
        raise BadRecord(f"{what} does not end with an assistant turn")
    return turns


def convert(records: Iterable[tuple[str, Any]], kind: str) -> Loaded:
    """Convert (location, raw record) pairs to `kind` ("sft" or "dpo"), quarantining failures."""
    assert kind in ("sft", "dpo")
    convert_one = to_sft if kind == "sft" else to_dpo
    out = Loaded()
    for location, raw in records:
        try:
            if not isinstance(raw, dict):
                raise BadRecord("record is not a JSON object")
            out.records.append(convert_one(raw))
        except BadRecord as exc:
            out.quarantined.append({"location": location, "reason": str(exc), "sample": str(raw)[:200]})
    return out


def read_records(path: Path) -> Iterator[tuple[str, Any]]:
    """(location, record) from a .json list or a .jsonl file; unparsable lines become BadRecord markers."""
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    yield f"{path.name}:{n}", _parse(line)
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path} must hold a JSON list of records (or be .jsonl)")
    for n, record in enumerate(data):
        yield f"{path.name}[{n}]", record


def _parse(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        return f"malformed JSON: {exc.msg}"


# Named alignment sets: name → (kind, a function giving the file)
CATALOG: dict[str, tuple[str, Any]] = {
    "alpaca_en": ("sft", lambda: _llamafactory("alpaca_en_demo.json")),
    "alpaca_zh": ("sft", lambda: _llamafactory("alpaca_zh_demo.json")),
    "gsm8k_train": ("sft", lambda: _gsm8k_train()),
    "dpo_en": ("dpo", lambda: _llamafactory("dpo_en_demo.json")),
    "dpo_zh": ("dpo", lambda: _llamafactory("dpo_zh_demo.json")),
}


def language_pairs() -> Loaded:
    """`dpo_language`: every demo prompt (dpo_en, dpo_zh) with its chosen reply over the chosen reply of a
    random prompt in the other language. Answering in the user's language is a preference a bilingual chat
    model needs and a tiny one can learn from a hundred pairs; the demo sets' own preferences (correctness,
    helpfulness) carry no signal a model of that size can pick up."""
    sets = {lang: load(f"dpo_{lang}", "dpo") for lang in ("en", "zh")}
    rng, out = random.Random(0), Loaded()
    for lang, other in (("en", "zh"), ("zh", "en")):
        replies = [r["chosen"] for r in sets[other].records]
        out.records += [{**r, "rejected": rng.choice(replies)} for r in sets[lang].records]
        out.quarantined += sets[lang].quarantined
    return out


# Preference sets built from the catalog's sets: name → a function giving the converted pairs
DERIVED: dict[str, Any] = {"dpo_language": language_pairs}


def _gsm8k_train() -> Path:
    try:
        return extra_file("gsm8k", "train.jsonl")
    except NotAvailable as exc:
        raise NotAvailable(f"{exc}; online, list hf:openai/gsm8k:main@train in align.sft_datasets instead") from None


def _llamafactory(name: str) -> Path:
    return package_dir("llamafactory") / "llamafactory-0.9.5" / "data" / name


HF_PREFIX = "hf:"


def parse_hf_id(spec: str) -> tuple[str, str | None, str]:
    """`hf:org/name[:config][@split]` → (id, config, split); the split defaults to train."""
    rest, _, split = spec.removeprefix(HF_PREFIX).partition("@")
    dataset_id, _, config = rest.partition(":")
    if not dataset_id:
        raise ValueError(f"{spec!r} is not a Hugging Face id; write hf:org/name[:config][@split]")
    return dataset_id, config or None, split or "train"


def read_hf(spec: str) -> Iterator[tuple[str, Any]]:
    """(location, record) from a Hugging Face dataset; a clear error when the hub is unreachable."""
    import datasets

    dataset_id, config, split = parse_hf_id(spec)
    try:
        rows = datasets.load_dataset(dataset_id, config, split=split)
    except Exception as exc:  # offline, unknown id, gated: all mean "cannot read it here"
        raise FileNotFoundError(f"Cannot load Hugging Face dataset {dataset_id!r} (config {config}, split {split}): "
                                f"{exc}. Without the hub, download it elsewhere and pass a local .jsonl file.") from exc
    for n, row in enumerate(rows):
        yield f"{dataset_id}[{n}]", dict(row)


def load(name_or_path: str, kind: str | None = None) -> Loaded:
    """A catalog set by name, `hf:id[:config][@split]`, or a local .json/.jsonl file (kind required
    for files and hub ids)."""
    if name_or_path.startswith(HF_PREFIX):
        if kind is None:
            raise ValueError(f"Say whether {name_or_path} holds SFT or DPO records (kind='sft' or 'dpo')")
        return convert(read_hf(name_or_path), kind)
    if name_or_path in DERIVED:
        if kind not in (None, "dpo"):
            raise ValueError(f"{name_or_path} holds preference pairs; use it in align.dpo_datasets")
        return DERIVED[name_or_path]()
    if name_or_path in CATALOG:
        catalog_kind, path = CATALOG[name_or_path]
        return convert(read_records(path()), kind or catalog_kind)
    path = Path(name_or_path)
    if not path.is_file():

        known = [*CATALOG, *DERIVED]
        hint = did_you_mean(name_or_path, known)
        raise FileNotFoundError(f"No alignment set or file {name_or_path!r}.{hint} Known sets: {', '.join(known)}")
    if kind is None:
        raise ValueError(f"Say whether {path} holds SFT or DPO records (kind='sft' or 'dpo')")
    return convert(read_records(path), kind)
