"""bf16 models on a CPU attend in float32: the same attention as sdpa on float32 inputs, a float32 KV cache,
and replies that are still the model's (batched equal to alone; a trained model's taught replies)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from components.serving.cpu_attention import NAME, float32_sdpa, one_query_attention
from components.serving.engine import Engine
from components.serving.generate import GenerationSettings, prepare, to_messages
from components.serving.mixed_step import MIXING
from tests.components.serving import fixtures as fx
from tests.components.serving.test_engine import collect, concurrently, prompts
from tests.components.serving.test_generate import served_from

pytestmark = pytest.mark.unit


def test_float32_sdpa_is_sdpa_on_float32_inputs_cast_back():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, n, 16, generator=g).bfloat16() for n in (1, 9, 9))
    mask = torch.ones(3, 1, 1, 9, dtype=torch.bool)
    mask[0, :, :, :4] = False  # a left-padded row
    module = torch.nn.Module()
    module.is_causal, module.num_key_value_groups = True, 1
    out, _ = float32_sdpa(module, q, k, v, mask, scaling=0.25)
    want = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, scale=0.25)
    assert out.dtype == torch.bfloat16 and torch.equal(out, want.transpose(1, 2).bfloat16())


@pytest.mark.parametrize(("heads", "kv_heads"), [(4, 4), (4, 2), (6, 1)])
def test_one_query_attention_is_sdpas_with_grouped_heads_and_either_mask(heads, kv_heads):
    g = torch.Generator().manual_seed(heads * 10 + kv_heads)
    q = torch.randn(5, heads, 1, 16, generator=g)
    k, v = (torch.randn(5, kv_heads, 23, 16, generator=g) for _ in range(2))
    mask = torch.ones(5, 1, 1, 23, dtype=torch.bool)
    mask[1, ..., :9] = mask[3, ..., :2] = False  # left padding
    additive = torch.zeros(5, 1, 1, 23).masked_fill(~mask, float("-inf"))
    rep = heads // kv_heads
    want = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), attn_mask=mask,
                                          scale=0.3).transpose(1, 2)
    for m in (mask, additive):
        assert torch.allclose(one_query_attention(q, k, v, m, 0.3), want, atol=1e-6)
    unmasked = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1))
    assert torch.allclose(one_query_attention(q, k, v, None, None), unmasked.transpose(1, 2), atol=1e-6)


def bf16(served):
    served.model = served.model.to(torch.bfloat16)
    return served


def test_a_bf16_engine_on_cpu_attends_in_float32_and_batches_exactly(tmp_path):
    from components.evaluate.toy import toy_model

    served = bf16(served_from(toy_model(tmp_path / "m", chat=True, max_len=512, seed=3)))
    engine = Engine(served, max_batch=8)
    # float32 attention, in its twin that also serves mixed steps (`mixed_step`)
    assert served.model.config._attn_implementation == MIXING[NAME] and engine._cache_dtype == torch.float32
    ids = prompts(served)
    alone = [collect(engine, i, max_new_tokens=24)[0] for i in ids]
    batched = concurrently(engine, [(i, {"max_new_tokens": 24}) for i in ids], stagger_s=0.002)
    assert [text for text, _ in batched] == alone


def test_a_trained_model_in_bf16_still_gives_its_replies(chat_dirs):
    served = bf16(served_from(chat_dirs[1]))
    engine, greedy = Engine(served), GenerationSettings(system_prompt="", temperature=0, max_new_tokens=60)
    for lang in (0, 1):
        ids = prepare(served, to_messages([], fx.PROMPTS[lang], ""), greedy).ids
        text, last = collect(engine, ids, max_new_tokens=60)
        assert text == fx.replies(1)[lang] and last.finish_reason == "stop"
