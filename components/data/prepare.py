"""The per-document work of data prep, run on Ray workers one batch at a time.

For every record that was read cleanly: normalise (code kept intact), convert classical Chinese
to simplified where asked, tag language and domain, then compute everything the driver needs to
decide: the exact-dup key, the MinHash signature, the first quality filter it fails, the
benchmark it overlaps, and a token estimate. Quarantined rows pass through untouched.
"""

from __future__ import annotations

import functools

import numpy as np

from components.data.decontam import load as load_index
from components.data.dedup import exact_key
from components.data.filters import first_failing
from components.data.minhash import MinHasher
from components.data.normalize import normalize, to_simplified
from components.data.tagging import bucket_of, resolve_tags
from components.data.units import UNIT_RE, estimate_tokens, unit_hashes

PREVIEW_CHARS = 300
STR_COLS = ("id", "text", "lang", "domain", "source", "status", "detail", "bucket", "lang_detected",
            "fail", "contam", "preview")


@functools.lru_cache(maxsize=4)
def _hasher(num_perm: int, ngram: int) -> MinHasher:
    return MinHasher(num_perm, ngram)


def prepare_batch(batch: dict[str, np.ndarray], cfg: dict, index_path: str) -> dict[str, np.ndarray]:
    """Columns in, columns out (numpy batch format); see the module docstring."""
    n = len(batch["uid"])
    out = {c: [""] * n for c in STR_COLS}
    for c in ("id", "text", "lang", "domain", "source", "status", "detail"):
        out[c] = [str(v) for v in batch[c]]
    nums = {c: np.zeros(n, dtype=np.int64) for c in ("tokens", "chars")}
    flags = {c: np.zeros(n, dtype=bool) for c in ("code_detected", "t2s", "changed")}
    exact = np.zeros(n, dtype=np.uint64)
    hasher = _hasher(cfg["dedup_num_perm"], cfg["dedup_ngram"])
    shingles = [np.zeros(1, np.uint64)] * n
    index = load_index(index_path)
    for i in range(n):
        if out["status"][i]:
            out["preview"][i] = out["text"][i][:PREVIEW_CHARS]
            continue
        shingles[i] = _one(i, out, nums, flags, exact, hasher, index, cfg)
    result = {"uid": np.asarray(batch["uid"], dtype=np.int64), "exact": exact,
              "signature": hasher.signatures(shingles), **nums, **flags}
    result.update({c: np.array(v, dtype=object) for c, v in out.items()})
    return result


def _one(i: int, out: dict, nums: dict, flags: dict, exact: np.ndarray, hasher: MinHasher, index, cfg: dict):
    raw = out["text"][i]
    lang, domain, found_lang, found_code = resolve_tags(out["lang"][i], out["domain"][i], raw)
    text = normalize(raw, is_code=domain == "code")
    if domain in cfg["t2s_domains"] and lang == "zh":
        simplified = to_simplified(text)
        flags["t2s"][i] = simplified != text
        text = simplified
    bucket = bucket_of(lang, domain)
    words = UNIT_RE.findall(text.lower())
    hashes = unit_hashes(words)  # shared by the repetition filters, decontamination and MinHash
    out["text"][i], out["lang"][i], out["domain"][i], out["bucket"][i] = text, lang, domain, bucket
    out["lang_detected"][i], flags["code_detected"][i], flags["changed"][i] = found_lang, found_code, text != raw
    out["fail"][i] = first_failing(text, bucket, cfg["filters"], cfg["min_chars"], words, hashes)
    out["contam"][i] = index.hit_hashes(hashes)
    out["preview"][i] = text[:PREVIEW_CHARS]
    nums["tokens"][i], nums["chars"][i] = estimate_tokens(text), len(text)
    exact[i] = exact_key(text)
    return hasher.shingles(text, hashes)
