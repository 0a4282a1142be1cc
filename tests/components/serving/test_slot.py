"""References, model cards and the hot-swapping slot against a real (SQLite) MLflow registry."""

from __future__ import annotations

import time

import pytest

from components.serving import refs
from components.serving.generate import GenerationSettings, to_messages
from components.serving.refs import resolve
from components.serving.slot import ModelSlot
from tests.components.serving import fixtures as fx
from tests.components.serving.conftest import MODEL

pytestmark = pytest.mark.integration

GREEDY = GenerationSettings(system_prompt="", temperature=0, max_new_tokens=60)


def ask(slot: ModelSlot, lang: int = 0) -> str:
    return "".join(slot.reply(to_messages([], fx.PROMPTS[lang], ""), GREEDY))


@pytest.fixture
def slot(registry_env):
    slot = ModelSlot(f"models:/{MODEL}@approved")
    slot.refresh()
    yield slot
    slot.close()


def test_references_resolve_to_concrete_versions(registry_env, chat_dirs):
    reg = registry_env
    target = resolve(f"models:/{MODEL}@approved")
    assert (target.kind, target.version, target.alias, target.label) == ("registry", reg.versions[1], "approved",
                                                                         f"{MODEL} v{reg.versions[1]}")
    assert target.load_uri == f"models:/{MODEL}/{reg.versions[1]}"  # an alias is never loaded by name
    assert resolve(f"models:/{MODEL}/{reg.versions[2]}").ident == f"registry:{MODEL}/{reg.versions[2]}"
    local = resolve(str(chat_dirs[2]))
    assert local.kind == "dir" and local.path == str(chat_dirs[2].resolve())


@pytest.mark.parametrize("ref, error, words", [
    ("models:/dsllm-chat/latest/x", ValueError, "models:/NAME@ALIAS"),
    ("models:/dsllm-chat@nope", LookupError, "dsllm promote"),
    ("models:/no-such-model/1", LookupError, "no version 1"),
    ("/no/such/dir", FileNotFoundError, "config.json"),
])
def test_bad_references_fail_with_a_clear_message(registry_env, ref, error, words):
    with pytest.raises(error, match=words):
        resolve(ref)


def test_model_card_comes_from_the_registry(slot, registry_env):
    card = slot.current().card
    assert card.title == f"{MODEL} v{registry_env.versions[1]}" and card.error == ""
    assert card.facts["aliases"] == "approved" and card.facts["version"] == registry_env.versions[1]
    assert card.description == fx.card_markdown(1)
    assert card.lineage["dsllm.data"] == "data-key-1" and set(card.lineage) >= {"dsllm.tokenizer", "dsllm.parent_run_id"}
    assert card.metrics["eval.greeting.acc"] == pytest.approx(0.6)
    assert sorted(p.name for p in card.images) == ["loss.png", "scorecard.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in card.images)


def test_a_swap_leaves_replies_in_flight_on_the_old_model(slot, registry_env):
    assert ask(slot) == fx.replies(1)[0]
    in_flight = slot.reply(to_messages([], fx.PROMPTS[0], ""), GREEDY)
    first = next(in_flight)
    registry_env.approve(2)
    assert slot.refresh() is True
    assert ask(slot, 1) == fx.replies(2)[1]  # new requests get the new model ...
    assert first + "".join(in_flight) == fx.replies(1)[0]  # ... the one in flight finishes on the old one
    status = slot.status()
    assert (status["version"], status["swaps"], status["replies"], status["active"]) == (
        registry_env.versions[2], 1, 3, 0)
    assert slot.refresh() is False  # nothing moved


def test_a_version_the_alias_does_not_point_at_is_never_served(slot, registry_env):
    registry_env.approve(2)
    slot.refresh()
    newest = registry_env.versions[3]
    assert max(int(v) for v in registry_env.versions.values()) == int(newest)  # a newer, unapproved candidate
    for _ in range(3):
        slot.refresh()
    assert slot.status()["version"] == registry_env.versions[2] and ask(slot) == fx.replies(2)[0]


def test_an_alias_that_moves_during_a_load_is_followed(slot, registry_env, monkeypatch):
    real_load, loaded = refs.load, []

    def load_then_move(target, *args, **kwargs):  # the gate moves the alias while version 2 loads
        loaded.append(target.version)
        if len(loaded) == 1:
            registry_env.approve(1)
        return real_load(target, *args, **kwargs)

    registry_env.approve(2)
    monkeypatch.setattr("components.serving.slot.load", load_then_move)
    assert slot.refresh() is False  # the alias is back on the version already served: nothing to swap
    assert loaded == [registry_env.versions[2]]  # version 2 was loaded, then dropped: the alias left it
    assert slot.status()["version"] == registry_env.versions[1] and ask(slot) == fx.replies(1)[0]


def test_watching_picks_up_a_moved_alias(slot, registry_env):
    slot.watch(0.2)
    registry_env.approve(2)
    deadline = time.monotonic() + 30
    while slot.status()["version"] != registry_env.versions[2] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert slot.status()["version"] == registry_env.versions[2] and ask(slot) == fx.replies(2)[0]


def test_a_failed_check_keeps_the_loaded_model_serving(slot, registry_env):
    registry_env.client().delete_registered_model_alias(MODEL, "approved")
    assert slot.try_refresh() is False
    status = slot.status()
    assert "no alias 'approved'" in status["last_error"] and status["version"] == registry_env.versions[1]
    assert ask(slot) == fx.replies(1)[0]
    registry_env.approve(1)
    slot.refresh()
    assert slot.status()["last_error"] == ""
