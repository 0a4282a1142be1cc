"""The tokenizer: byte-level BPE that round-trips any string, equal ids from sentencepiece and the HF export,
digits split, whitespace kept, special and chat tokens with a chat template TRL can mask."""

import json
import sysconfig
from pathlib import Path

import pytest
import sentencepiece as spm
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from components.tokenizer import hf
from components.tokenizer.codec import Codec
from components.tokenizer.train import ROLE_TOKENS, train
from tests.extras import extras_dir

pytestmark = pytest.mark.unit


def real_texts() -> list[str]:
    """English (GSM8K), Chinese (CMMLU, C-Eval) and Python (the standard library): no network needed."""
    root = extras_dir()
    if root is None:
        pytest.skip("the benchmark extras (GSM8K train, CMMLU, C-Eval) are not here: set DSLLM_TEST_BENCHMARKS")
    en = [json.loads(ln)["question"] + "\n" + json.loads(ln)["answer"]
          for ln in (root / "gsm8k" / "train.jsonl").read_text().splitlines()[:600]]
    zh = [p.read_text(encoding="utf-8") for p in sorted((root / "cmmlu" / "test").glob("*.csv"))[:8]]
    zh += [p.read_text(encoding="utf-8") for p in sorted((root / "ceval" / "val").glob("*.csv"))[:8]]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    code = [(stdlib / name).read_text() for name in ("textwrap.py", "bisect.py", "shlex.py", "fnmatch.py")]
    return en + zh + code


class Trained(dict):
    def __repr__(self) -> str:  # hypothesis prints fixtures of failing examples; keep that short
        return "<trained tokenizer>"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    texts = real_texts()
    settings_used = train(texts, 1024, 0.9995, root / "m.model")
    hf.export(root / "m.model", root / "hf")
    return Trained({"root": root, "texts": texts, "settings": settings_used,
            "sp": spm.SentencePieceProcessor(model_file=str(root / "hf" / "tokenizer.model")),
            "hf": hf.load(root / "hf"), "codec": Codec(root / "hf" / "tokenizer.model")})


def test_special_token_ids(trained):
    sp = trained["sp"]
    assert [sp.id_to_piece(i) for i in range(8)] == ["<unk>", "<s>", "</s>", "<pad>", *ROLE_TOKENS]
    assert sp.get_piece_size() == 1024 and sp.bos_id() == 1 and sp.eos_id() == 2 and sp.pad_id() == 3
    tok = trained["hf"]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id) == (1, 2, 3, 0)
    assert tok.convert_tokens_to_ids(ROLE_TOKENS) == [4, 5, 6, 7]


def test_control_token_literals_are_special_in_hf_only(trained):
    assert trained["hf"]("<s>hi</s>")["input_ids"][0] == 1
    assert trained["sp"].encode("<s>")[0] != 1


def test_autotokenizer_encodes_exactly_as_sentencepiece(trained):
    sp, tok = trained["sp"], trained["hf"]
    mixed = trained["texts"][::7] + ["def f(x):\n    return x  +  1\n\n\t# 注释 123456 😀 𠀀 e\u0301 end  ",
                                     "<|user|>\n你好<|end|>\n", "  leading and trailing spaces  "]
    for text in mixed:
        assert tok(text)["input_ids"] == sp.encode(text), text[:60]
        assert tok.decode(sp.encode(text)) == sp.decode(sp.encode(text))


def test_digits_are_split_and_whitespace_survives(trained):
    sp = trained["sp"]
    pieces = sp.encode("year 2024 cost 1234567", out_type=str)
    assert all(len(p.strip("\u2581")) <= 1 for p in pieces if any(c.isdigit() for c in p))
    code = "class A:\n\tdef f(self):\n        return {'a':  1}\n\n\n"
    assert sp.decode(sp.encode(code)) == code
    assert any(set(sp.id_to_piece(i)) == {"\u2581"} and len(sp.id_to_piece(i)) >= 4 for i in range(1024))


ODD_CHARS = st.one_of(
    st.characters(codec=None, exclude_categories=()),                  # anything, lone surrogates included
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),       # emoji
    st.characters(min_codepoint=0x20000, max_codepoint=0x2EBEF),       # CJK extension planes
    st.characters(categories=["Mn", "Cc", "Cf", "Zs"]),                # combining marks, controls, spaces
    st.sampled_from(["\u2581", "\n", "\t", " ", "<|end|>", "<s>", "中", "e"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ODD_CHARS, max_size=60).map("".join))
@example("\ud800 lone \udfff surrogates \ud83d\ude00 ▁▁ 😀 𠀀 e\u0301 \x00\x1f <|end|>")
def test_codec_round_trip_is_lossless_for_any_string(trained, text):
    codec = trained["codec"]
    assert codec.decode(codec.encode(text)) == text


CONTROL_LITERALS = ("<s>", "</s>", "<pad>", "<unk>")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.characters(codec="utf-8", exclude_characters="\u2581"), st.sampled_from(
    ["<|end|>", "<|user|>", " ", "\n", "<", ">", "s", "/"])), max_size=60).map("".join))
def test_sentencepiece_and_hf_agree_and_round_trip_valid_text(trained, text):
    # HF matches the control tokens' literal text (so the chat template's "<s>" becomes bos);
    # sentencepiece reads it as plain text. That one documented difference is left out here.
    assume(not any(c in text for c in CONTROL_LITERALS))
    sp, tok, codec = trained["sp"], trained["hf"], trained["codec"]
    ids = sp.encode(text)
    assert sp.decode(ids) == text
    assert tok(text)["input_ids"] == ids
    assert codec.encode(text) == ids


def test_chat_template_marks_assistant_tokens_for_training(trained):
    tok = trained["hf"]
    chat = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"}]
    text = tok.apply_chat_template(chat, tokenize=False)
    assert text == "<s><|system|>\nYou are helpful.<|end|>\n<|user|>\n2+2?<|end|>\n<|assistant|>\n4</s>\n"
    enc = tok.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    masked = [i for i, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m]
    assert tok.decode(masked) == "4</s>"
    prompt = tok.apply_chat_template(chat[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|user|>\n2+2?<|end|>\n<|assistant|>\n")
    assert tok.decode(enc["input_ids"], skip_special_tokens=True).strip().endswith("4")


def test_small_vocab_keeps_coverage_honest(trained):
    s = trained["settings"]
    assert 0.5 < s["character_coverage"] <= 1 and s["rare_chars_dropped"] > 0


def test_empty_sample_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="kept no documents"):
        train([], 1024, 0.9995, tmp_path / "m.model")
