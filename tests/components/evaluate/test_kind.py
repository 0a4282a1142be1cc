"""The model kind from the manifest of the artifact a model folder is or sits in (`kind.model_kind`)."""

from __future__ import annotations

import json

import pytest

from components.evaluate.kind import model_kind

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("stage", "kind"), [("pretrain", "base"), ("dpo", "chat"), ("pack", None)])
def test_an_artifact_folder_and_its_hf_folder_give_the_stage_kind(tmp_path, stage, kind):
    (tmp_path / "hf").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"stage": stage, "files": {}}))
    assert model_kind(tmp_path) == model_kind(tmp_path / "hf") == kind


def test_no_manifest_or_an_unreadable_one_leaves_the_kind_unknown(tmp_path):
    (tmp_path / "hf").mkdir()
    assert model_kind(tmp_path / "hf") is None
    (tmp_path / "manifest.json").write_text("{not json")
    assert model_kind(tmp_path / "hf") is None
