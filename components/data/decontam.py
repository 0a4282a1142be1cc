"""Decontamination: drop training documents that share an n-gram with any evaluation item.

N-grams are `decontam_ngram` units long (13 words; 13 characters for Chinese). The index is the
sorted, distinct n-gram hashes of every item of every available benchmark, with the benchmark
each came from; it is built once and cached under `<home>/cache/decontam/<key>/` where the key
covers n, the unit definition and the sha256 of every benchmark file. Lookup is a binary search
of a document's n-gram hashes (numpy), so it runs inside Ray workers from the mmapped index.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from components.data.evalsets import LOADERS
from components.data.units import ngram_hashes, text_ngrams, unit_hashes
from components.home import Home
from components.names import did_you_mean
from components.sources.fetch import sha256_of

INDEX_VERSION = 4
BLOOM_BITS = 26  # a 2^26-bit (8 MiB) filter in front of the sorted hashes: most n-grams stop there


def check_benchmarks(names: list[str]) -> list[str]:
    """`names`, after checking each is a known benchmark (ValueError with a hint otherwise)."""
    for name in names:
        if name not in LOADERS:
            hint = did_you_mean(name, LOADERS)
            raise ValueError(f"Unknown benchmark {name!r} for decontamination.{hint} Known: {', '.join(LOADERS)}.")
    return names


def _available(names: list[str], download: bool) -> tuple[dict[str, list[Path]], dict[str, str]]:
    files, missing = {}, {}
    for name in names:
        try:
            files[name] = LOADERS[name][0](download)
        except FileNotFoundError as exc:
            missing[name] = str(exc)  # what is missing and how to get it
    return files, missing


def build_index(names: list[str], n: int, home: Home | None = None, download: bool = True) -> Path:
    """The cached index directory for benchmarks `names` (built on first use); see meta.json there."""
    home = home or Home.resolve()
    files, missing = _available(check_benchmarks(names), download)
    key_src = json.dumps({"v": INDEX_VERSION, "n": n, "files": {k: [sha256_of(p) for p in v] for k, v in files.items()},
                          "missing": sorted(missing)}, sort_keys=True)
    target = home.cache / "decontam" / hashlib.sha256(key_src.encode()).hexdigest()[:24]
    if (target / "meta.json").is_file():
        return target
    hashes, bench, meta = [], [], {"n": n, "benchmarks": {}, "missing": missing, "order": list(files)}
    for code, (name, paths) in enumerate(files.items()):
        texts = list(dict.fromkeys(LOADERS[name][1](paths)))  # an item listed in two files counts once
        grams = [text_ngrams(t, n, short_ok=False) for t in texts]
        meta["benchmarks"][name] = {"items": len(grams), "items_too_short": sum(1 for g in grams if not len(g)),
                                    "files": len(paths)}
        flat = np.concatenate(grams) if grams else np.empty(0, np.uint64)
        hashes.append(flat)
        bench.append(np.full(len(flat), code, dtype=np.uint8))
    _save(target, np.concatenate(hashes or [np.empty(0, np.uint64)]),
          np.concatenate(bench or [np.empty(0, np.uint8)]), meta)
    return target


def _save(target: Path, hashes: np.ndarray, bench: np.ndarray, meta: dict) -> None:
    uniq, first = np.unique(hashes, return_index=True)
    meta["ngrams"] = int(len(uniq))
    tmp = target.with_name(target.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    np.save(tmp / "hashes.npy", uniq)
    np.save(tmp / "bloom.npy", _bloom(uniq))
    np.save(tmp / "bench.npy", bench[first])
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    tmp.rename(target)


def _slots(hashes: np.ndarray) -> np.ndarray:
    return (hashes >> np.uint64(64 - BLOOM_BITS)).astype(np.int64)


def _bloom(hashes: np.ndarray) -> np.ndarray:
    bits = np.zeros(1 << BLOOM_BITS, dtype=bool)
    bits[_slots(hashes)] = True
    return np.packbits(bits, bitorder="little")


class Index:
    """A loaded index: `hit(words)` names the benchmark a document overlaps, or ''."""

    def __init__(self, path: Path):
        self.meta = json.loads((path / "meta.json").read_text())
        self.hashes = np.load(path / "hashes.npy", mmap_mode="r")
        self.bench = np.load(path / "bench.npy", mmap_mode="r")
        self.bloom = np.load(path / "bloom.npy")
        self.names = self.meta["order"]
        self.n = self.meta["n"]

    def hit(self, words: list[str]) -> str:
        return self.hit_hashes(unit_hashes(words))

    def hit_hashes(self, unit_hash: np.ndarray) -> str:
        """Like `hit`, from the document's unit hashes (`units.unit_hashes`)."""
        if len(self.hashes) == 0 or len(unit_hash) < self.n:
            return ""
        grams = ngram_hashes(unit_hash, self.n, short_ok=False)
        slots = _slots(grams)
        grams = grams[(self.bloom[slots >> 3] >> (slots & 7).astype(np.uint8)) & 1 == 1]
        if len(grams) == 0:
            return ""
        pos = np.searchsorted(self.hashes, grams).clip(0, len(self.hashes) - 1)
        found = np.nonzero(self.hashes[pos] == grams)[0]
        return self.names[int(self.bench[pos[found[0]]])] if len(found) else ""


@functools.lru_cache(maxsize=2)
def load(path: str) -> Index:
    """One loaded index per process (Ray workers reuse it across batches)."""
    return Index(Path(path))
