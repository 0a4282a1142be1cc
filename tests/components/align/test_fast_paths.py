"""The alignment speed-ups keep the losses: padding-free SFT with the fused head trains exactly the assistant
tokens, and DPO with reference log-probs computed once gives the loss it gives with a live reference."""

from __future__ import annotations

import pytest
import torch

from components.align import packed_attention
from components.align.chat import assistant_mask, load_tokenizer
from components.config import AlignConfig
from tests.components.align.fixtures import make_base_model, qa_pairs

CFG = AlignConfig(num_workers=0, batch_size=4, max_length=64, sft_epochs=1, dpo_epochs=1)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_base_model(tmp_path_factory.mktemp("base")) / "hf"


def _conversations() -> list[list[dict]]:
    (q1, a1), (q2, a2), (q3, a3) = qa_pairs()[:3]
    return [[{"role": "user", "content": q1}, {"role": "assistant", "content": a1}],
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": q2},
             {"role": "assistant", "content": a2}, {"role": "user", "content": q3},
             {"role": "assistant", "content": a3}],
            [{"role": "user", "content": q3}, {"role": "assistant", "content": a3}]]


def _reference_loss(model, tok, conversations) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over the template's assistant tokens, one unpadded conversation at a time."""
    total, count = torch.zeros(()), 0
    for messages in conversations:
        marked = assistant_mask(tok, messages)
        ids, mask = torch.tensor([marked["input_ids"]]), torch.tensor(marked["assistant_masks"])
        logits = model(input_ids=ids).logits[0, :-1]
        trained = mask[1:].bool()
        total = total + torch.nn.functional.cross_entropy(logits[trained], ids[0, 1:][trained], reduction="sum")
        count += int(trained.sum())
    return total / count, count


@pytest.mark.parametrize("attention", ["sdpa", packed_attention.NAME])
def test_padding_free_sft_loss_covers_exactly_the_assistant_tokens(base, tmp_path, attention):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from components.align import sft

    tok = load_tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation=attention)
    conversations = _conversations()
    trainer = sft.build_trainer(CFG, model, tok, Dataset.from_list([{"messages": m} for m in conversations]), None,
                                str(tmp_path))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(conversations))])
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch  # one row, no padding
    expected, count = _reference_loss(model, tok, conversations)
    assert int((batch["labels"][:, 1:] != -100).sum()) == count
    loss = trainer.compute_loss(trainer.model, batch)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    loss.backward()  # the fused head's gradients reach the backbone
    assert trainer.model.model.embed_tokens.weight.grad.abs().sum() > 0


def _packed_row(model, conversations: list[torch.Tensor]) -> torch.Tensor:
    ids = torch.cat(conversations)[None]
    positions = torch.cat([torch.arange(len(c)) for c in conversations])[None]
    return model(input_ids=ids, position_ids=positions, use_cache=False).logits  # as in training: HF sees packing
    # only without a cache


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_attention_attends_within_each_conversation(base, dtype):
    """Logits and gradients of a packed row as each conversation alone gives them; in bf16 on a CPU the attention
    runs in float32, so its logits are at least as close to the float32 model's as plain sdpa's in bf16."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    conversations = [torch.randint(3, 300, (n,)) for n in (7, 19, 1, 12)]
    models = {name: AutoModelForCausalLM.from_pretrained(base, dtype=dtype, attn_implementation=name)
              for name in ("sdpa", packed_attention.NAME)}
    alone = torch.cat([models["sdpa"](input_ids=c[None]).logits for c in conversations], dim=1)
    packed = _packed_row(models[packed_attention.NAME], conversations)
    if dtype == torch.float32:
        torch.testing.assert_close(packed, alone, rtol=1e-5, atol=1e-5)
        packed.square().mean().backward()
        _packed_row(models["sdpa"], conversations).square().mean().backward()  # HF's block-diagonal mask
        ours, hf = (m.model.layers[0].self_attn.q_proj.weight.grad for m in models.values())
        torch.testing.assert_close(hf, ours, rtol=1e-4, atol=1e-6)
    else:
        exact = _packed_row(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), conversations)
        ours, plain = ((x.float() - exact).abs().max() for x in (packed, alone))
        assert ours <= plain * 1.01


def test_packed_attention_keeps_padding_masks_and_the_cache(base):
    """Padded batches and cached generation are plain sdpa: the same tokens as the model with sdpa."""
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(base)
    prompts = tok(["Hello there, how", "A longer prompt than the first one, to pad"], return_tensors="pt",
                  padding=True, padding_side="left")
    replies = [AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation=name).generate(
        **prompts, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
        for name in ("sdpa", packed_attention.NAME)]
    assert replies[0].tolist() == replies[1].tolist()


def test_bf16_alignment_steps_fp32_master_weights_and_saves_them(base, tmp_path):
    """precision=bf16: the model computes in bf16, AdamW steps fp32 copies (updates far below bf16's resolution
    still count), and the saved model holds the fp32 weights."""
    from datasets import Dataset
    from safetensors.torch import load_file

    from components.align import sft
    from components.align.runner import load_model, master_weights_into_model
    from components.pretrain.optim import MasterWeightsAdamW

    cfg = CFG.model_copy(update={"precision": "bf16", "sft_lr": 1e-7, "warmup_ratio": 0.0})
    tok = load_tokenizer(base)
    model = load_model(str(base), cfg, tok)
    assert model.dtype == torch.bfloat16
    start = {n: p.detach().float().clone() for n, p in model.named_parameters()}
    data = Dataset.from_list([{"messages": m} for m in _conversations()])
    trainer = sft.build_trainer(cfg, model, tok, data, None, str(tmp_path / "run"))
    trainer.args.max_steps = 2
    trainer.train()
    optimizer = trainer.optimizer.optimizer
    assert isinstance(optimizer, MasterWeightsAdamW)
    name_of = {id(p): n for n, p in model.named_parameters()}
    names = [name_of[id(p)] for p in optimizer.model_params]
    assert sorted(names) == sorted(start)
    def share_moved(tensors) -> float:
        return float(sum((t.float() != start[n]).sum() for n, t in zip(names, tensors, strict=True)) /
                     sum(start[n].numel() for n in names))

    assert share_moved(optimizer.masters) > 0.5  # most weights moved by about lr = 1e-7 (unseen tokens: no grad) ...
    assert share_moved(optimizer.model_params) < 0.1  # ... which most bf16 weights cannot even represent
    for p, m in zip(optimizer.model_params, optimizer.masters, strict=True):
        assert torch.equal(p, m.to(torch.bfloat16))
    master_weights_into_model(trainer)
    trainer.save_model(str(tmp_path / "saved"))
    saved = load_file(str(tmp_path / "saved" / "model.safetensors"))
    for name, m in zip(names, optimizer.masters, strict=True):
        assert saved[name].dtype == torch.float32 and torch.equal(saved[name], m)


def test_dpo_with_cached_reference_log_probs_gives_the_live_reference_loss(base, tmp_path):
    tok = load_tokenizer(base)
    pairs = [{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": "Sure! " + a}],
              "rejected": [{"role": "assistant", "content": a}]} for q, a in qa_pairs()[:8]]

    cached, live = (_first_batch_loss(base, tok, pairs, tmp_path / str(p), precompute=p)[0] for p in (True, False))
    assert abs(float(live) - 0.6931) > 1e-3
    torch.testing.assert_close(cached, live, rtol=1e-5, atol=1e-6)


def _models(base):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    policy, ref = (AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32) for _ in range(2))
    with torch.no_grad():  # a policy that differs from its reference, so the loss is not log(2)
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return policy, ref


def _first_batch_loss(base, tok, pairs, out, precompute: bool, trl_head: bool = False):
    """DPO loss of the first four pairs and the policy's output-weight gradient, as the stage's trainer computes
    them (or, with `trl_head`, TRL's own DPOTrainer with the same arguments)."""
    from datasets import Dataset
    from trl import DPOTrainer

    from components.align import dpo

    policy, ref = _models(base)
    cfg = CFG.model_copy(update={"dpo_precompute_ref": precompute})
    trainer = dpo.build_trainer(cfg, policy, ref, tok, Dataset.from_list(pairs), None, str(out))
    if trl_head:
        policy, ref = _models(base)
        trainer = DPOTrainer(model=policy, ref_model=ref, args=trainer.args, train_dataset=Dataset.from_list(pairs),
                             processing_class=tok)
    assert ("ref_chosen_logps" in trainer.train_dataset.column_names) == precompute
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    return loss.detach(), trainer.model.lm_head.weight.grad


def test_dpo_lean_head_gives_trls_loss_and_gradients(base, tmp_path):
    tok = load_tokenizer(base)
    pairs = [{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": "Sure! " + a}],
              "rejected": [{"role": "assistant", "content": a}]} for q, a in qa_pairs()[:8]]
    ours, theirs = (_first_batch_loss(base, tok, pairs, tmp_path / str(t), precompute=False, trl_head=t)
                    for t in (False, True))
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-4, atol=1e-6)
    assert ours[1].abs().sum() > 0
