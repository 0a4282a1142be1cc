"""`dsllm sources ...`: list the catalog of real text sources, fetch them, look at samples."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from components.sources.catalog import CATALOG, Source, get_source, local_source, prepare, root_of
from components.sources.fetch import ChecksumError, cached_path

sources_app = typer.Typer(help="Real text sources: list the catalog, fetch and verify, show samples.",
                          no_args_is_help=True)
console = Console()


@sources_app.command("ls")
def sources_ls() -> None:
    """The catalog: name, language, domain, license, where the text comes from."""
    table = Table("name", "lang", "domain", "license", "origin", "what", title="dsllm sources")
    for src in CATALOG.values():
        table.add_row(src.name, src.lang, src.domain, src.license, src.origin, src.description)
    console.print(table)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]{exc}[/red]")
    return typer.Exit(1)


@sources_app.command("fetch")
def sources_fetch(
    names: Annotated[list[str] | None, typer.Argument(help="Catalog names (default: all)")] = None,
) -> None:
    """Download and verify (sha256) the archives of the named sources; print the cache paths."""
    try:
        sources = [get_source(n) for n in names] if names else list(CATALOG.values())
        for src in sources:
            prepare([src], progress=True)
            where = f"{cached_path(src.archive)} -> {root_of(src)}" if src.archive else str(root_of(src))
            console.print(f"[green]ok[/green] {src.name}: {escape(where)}", soft_wrap=True)
    except (ValueError, FileNotFoundError, ChecksumError, RuntimeError) as exc:
        raise _fail(exc) from None


def _resolve(name: str) -> Source:
    if name in CATALOG:
        return CATALOG[name]
    try:
        src = local_source(name)
        prepare([src])
        return src
    except (FileNotFoundError, ValueError):
        return get_source(name)  # raises the did-you-mean error


@sources_app.command("sample")
def sources_sample(
    name: Annotated[str, typer.Argument(help="A catalog name, or a local file/glob")],
    n: Annotated[int, typer.Option("-n", min=1, help="How many documents")] = 3,
    seed: Annotated[int, typer.Option(help="Which spread-out sample")] = 0,
    chars: Annotated[int, typer.Option(help="Characters shown per document")] = 500,
) -> None:
    """Show `n` documents spread over the whole source (the same pick the corpus stage makes)."""
    from components.sources.sampling import sample_records

    try:
        src = _resolve(name)
        prepare([src], progress=True)
        records = sample_records(src, n, seed)
    except (ValueError, FileNotFoundError, ChecksumError, RuntimeError) as exc:
        raise _fail(exc) from None
    for record in records:
        more = f" … (+{len(record.text) - chars:,} chars)" if len(record.text) > chars else ""
        console.rule(escape(f"{record.id}  [{record.lang}, {record.domain}, {len(record.text):,} chars]"))
        console.print(record.text[:chars] + more, markup=False, highlight=False)
