"""`dsllm sources ls | fetch | sample` through typer's runner."""

import json

import pytest
from typer.testing import CliRunner

from components.sources.catalog import CATALOG
from dsllm.cli_sources import sources_app

pytestmark = pytest.mark.unit
runner = CliRunner()


def test_ls_lists_every_catalog_source():
    result = runner.invoke(sources_app, ["ls"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert all(name in result.output for name in CATALOG)


def test_fetch_unknown_name_exits_with_a_hint(home):
    result = runner.invoke(sources_app, ["fetch", "chinese_poetri"])
    assert result.exit_code == 1 and "Did you mean 'chinese_poetry'" in " ".join(result.output.split())


def test_fetch_stdlib_prints_its_folder(home):
    result = runner.invoke(sources_app, ["fetch", "python_stdlib"], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "ok python_stdlib:" in result.output and "python3" in result.output


def test_sample_a_local_file_shows_n_spread_documents(home, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"document number {i}"}) + "\n" for i in range(50)))
    result = runner.invoke(sources_app, ["sample", str(path), "-n", "3"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    shown = [line for line in result.output.splitlines() if line.startswith("document number")]
    assert len(shown) == 3 and shown != ["document number 0", "document number 1", "document number 2"]
