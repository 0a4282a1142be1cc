"""Assemble the SFT examples or DPO pairs a stage trains on, from several named sets.

Each set is read (bad records quarantined with their reason), shuffled with the seed and
interleaved round-robin, so a cap draws evenly from every set. The stream is then decontaminated
against the eval sets and length-checked with the stage's tokenizer: an SFT conversation longer
than max_length is skipped (truncating it would cut off the end-of-turn token the model must learn
to emit), and so is one whose final answer exceeds max_answer_tokens when set; a DPO pair whose
prompt alone takes more than half of max_length is skipped (its completions would be truncated to
nothing). A held-out share of the prompts is split off evenly across the
stream (pairs that share a prompt stay on one side, so no held-out prompt was trained on). Each record
keeps the name of its set under `dataset` (`training_records` strips it for the trainers). Everything
dropped is counted; quarantined and contaminated records go to a jsonl file. An optional set whose
data is not on this machine (`gsm8k_train` without `$DSLLM_BENCHMARKS`) is skipped with one console
line and listed under `not_available`; eval sets decontamination could not use are listed under
`decontam_unavailable`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

from components.align.data import load
from components.align.decontam import Index, decontaminate
from components.sources.benchmarks import NotAvailable, say_missing


@dataclass
class Prepared:
    """Training and held-out records plus what happened to the others."""

    train: list[dict]
    heldout: list[dict]
    counts: dict = field(default_factory=dict)


def interleave(sets: list[list[dict]], seed: int) -> list[dict]:
    """Each set shuffled, then one from each in turn."""
    rng = random.Random(seed)
    shuffled = [rng.sample(records, len(records)) for records in sets]
    return [r for group in zip_longest(*shuffled) for r in group if r is not None]


def token_length(tokenizer, record: dict) -> int:
    """Tokens of an SFT conversation, or of a DPO pair's prompt with its generation marker."""
    if "messages" in record:
        return len(_ids(tokenizer, record["messages"], add_generation_prompt=False))
    return len(_ids(tokenizer, record["prompt"], add_generation_prompt=True))


def _ids(tokenizer, messages: list[dict], add_generation_prompt: bool) -> list[int]:
    return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                         add_generation_prompt=add_generation_prompt)["input_ids"]


def too_long(tokenizer, record: dict, max_length: int, max_answer_tokens: int | None = None) -> str | None:
    """Why a record does not fit ("too_long", "answer_too_long"), or None when it does."""
    limit = max_length if "messages" in record else max_length // 2
    if token_length(tokenizer, record) > limit:
        return "too_long"
    if max_answer_tokens and "messages" in record:
        answer = tokenizer(record["messages"][-1]["content"], add_special_tokens=False)["input_ids"]
        if len(answer) > max_answer_tokens:
            return "answer_too_long"
    return None


def prompt_key(record) -> str:
    """The prompt of an SFT example (its turns before the final answer) or a DPO pair, as a string."""
    if not isinstance(record, dict):
        return repr(record)
    prompt = record["prompt"] if "prompt" in record else record.get("messages", [])[:-1]
    return json.dumps(prompt, ensure_ascii=False, sort_keys=True)


def split_heldout(records: list, fraction: float) -> tuple[list, list]:
    """(train, held-out): every k-th prompt held out with all its records, at least 2 prompts and never all."""
    groups: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(prompt_key(record), []).append(i)
    keys = list(groups)
    if len(keys) < 3:
        raise ValueError(f"Only {len(keys)} usable prompts: too few to train and hold some out; "
                         "add data, raise the cap or max_length")
    n_held = min(max(2, round(len(keys) * fraction)), len(keys) - 1)
    step = len(keys) / n_held
    held = {i for k in range(n_held) for i in groups[keys[int(k * step)]]}
    return ([r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held])


def training_records(records: list[dict]) -> list[dict]:
    """The records as the TRL trainers take them (without the `dataset` tag)."""
    return [{k: v for k, v in r.items() if k != "dataset"} for r in records]


def prepare(names: list[str], kind: str, tokenizer, *, max_length: int, cap: int | None,
            heldout_fraction: float, seed: int, quarantine: Path, index: Index | None,
            max_answer_tokens: int | None = None) -> Prepared:
    """Read, mix, decontaminate, length-check and split `names` (kind "sft" or "dpo")."""
    if not names:
        raise ValueError(f"No {kind.upper()} datasets configured (align.{kind}_datasets is empty)")
    counts: dict = {"read": {}, "quarantined": Counter(), "decontaminated": Counter(), "too_long": 0,
                    "answer_too_long": 0, "not_available": [],
                    "decontam_unavailable": sorted(getattr(index, "unavailable", []))}
    quarantine.parent.mkdir(parents=True, exist_ok=True)
    sets = []
    with quarantine.open("w", encoding="utf-8") as bad:
        for name in names:
            try:
                loaded = load(name, kind)
            except NotAvailable as exc:  # an optional set: reported, never fatal
                say_missing(kind, f"dataset {name}", str(exc))
                counts["not_available"].append(name)
                continue
            counts["read"][name] = len(loaded.records) + len(loaded.quarantined)
            counts["quarantined"].update(loaded.reasons)
            for q in loaded.quarantined:
                bad.write(json.dumps({"dataset": name, **q}, ensure_ascii=False) + "\n")
            sets.append([{**r, "dataset": name} for r in loaded.records])
        kept = _take(interleave(sets, seed), tokenizer, (max_length, max_answer_tokens), cap, index, counts, bad)
    train, heldout = split_heldout(kept, heldout_fraction)
    counts.update(train=len(train), heldout=len(heldout), quarantined=dict(counts["quarantined"]),
                  decontaminated=dict(counts["decontaminated"]))
    counts["quarantined_total"] = sum(counts["quarantined"].values())
    counts["decontaminated_total"] = sum(counts["decontaminated"].values())
    return Prepared(train, heldout, counts)


def _take(stream: list[dict], tokenizer, limits: tuple[int, int | None], cap: int | None, index: Index | None,
          counts: dict, bad) -> list[dict]:
    """Walk the stream in chunks until `cap` records pass decontamination and the length check."""
    kept: list[dict] = []
    chunk = max(64, cap or 0)
    for start in range(0, len(stream), chunk):
        clean, dropped = decontaminate(stream[start:start + chunk], index or (lambda _text: None))
        for record, benchmark in dropped:
            counts["decontaminated"][benchmark] += 1
            bad.write(json.dumps({"reason": f"contaminated: {benchmark}", "sample": record},
                                 ensure_ascii=False) + "\n")
        for record in clean:
            if cap is not None and len(kept) >= cap:
                break
            reason = too_long(tokenizer, record, *limits)
            if reason is None:
                kept.append(record)
            else:
                counts[reason] += 1
        if cap is not None and len(kept) >= cap:
            break
    return kept


def default_index(n: int = 13, benchmarks: tuple[str, ...] | None = None) -> Index:
    """The pretraining data's eval-set n-gram index (components.data.decontam), as text → benchmark name.

    Same benchmarks, same units (words; characters for Chinese) and the same cached index as the data stage.
    """
    from components.config import DataConfig
    from components.data import decontam
    from components.data.units import units

    names = list(benchmarks or DataConfig().decontam_benchmarks)
    index = decontam.load(str(decontam.build_index(names, n)))
    for name, reason in sorted(index.meta["missing"].items()):
        say_missing("align", f"decontamination against {name}", reason)
    return _Hits(lambda text: index.hit(units(text)) or None, sorted(index.meta["missing"]))


class _Hits:
    """An `Index` callable that also says which eval sets it could not cover (`unavailable`)."""

    def __init__(self, hit, unavailable: list[str]):
        self.hit, self.unavailable = hit, unavailable

    def __call__(self, text: str) -> str | None:
        return self.hit(text)


def write_jsonl(records: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path.resolve()


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
