"""Model scale and compute, as DeepSeek LLM (arXiv 2401.02954, §3.2) represents them.

M = 72·n_layer·d² + 12·n_layer·d·l_seq is the non-embedding FLOPs per token (attention included,
vocabulary excluded); 6N₁ = 72·n_layer·d² (non-embedding parameters, OpenAI) and
6N₂ = 6N₁ + 6·n_vocab·d (all parameters, Chinchilla) are the older representations beside it;
compute is C = M·D. MFU uses the actual model FLOPs: 6·N_params + 12·n_layer·d·l_seq per token.
"""

from __future__ import annotations

from components.config import ModelConfig


def flops_per_token(model: ModelConfig, seq_len: int) -> int:
    """M: non-embedding FLOPs per token (forward + backward), DeepSeek's model scale."""
    return 72 * model.n_layer * model.d_model ** 2 + 12 * model.n_layer * model.d_model * seq_len


def six_n1(model: ModelConfig) -> int:
    """6N₁ = 72·n_layer·d² (non-embedding parameters)."""
    return 72 * model.n_layer * model.d_model ** 2


def six_n2(model: ModelConfig) -> int:
    """6N₂ = 72·n_layer·d² + 6·n_vocab·d (parameters including the vocabulary)."""
    return six_n1(model) + 6 * model.vocab_size * model.d_model


def attention_flops_per_token(model: ModelConfig, seq_len: int) -> int:
    """12·n_layer·d·l_seq: attention scores and values, forward and backward."""
    return 12 * model.n_layer * model.d_model * seq_len


def model_flops_per_token(model: ModelConfig, seq_len: int, params: int) -> int:
    """FLOPs a training step spends per token: 6·N_params + attention (the MFU numerator)."""
    return 6 * params + attention_flops_per_token(model, seq_len)


def accounting(model: ModelConfig, seq_len: int, tokens: int, params: dict[str, int]) -> dict[str, float]:
    """Every scale number for one run: parameters, M, 6N₁, 6N₂, C = M·D and the MFU FLOPs."""
    m = flops_per_token(model, seq_len)
    return {
        "params": params["total"], "params_non_embedding": params["non_embedding"],
        "params_embedding": params["embedding"], "flops_per_token": m, "six_n1": six_n1(model),
        "six_n2": six_n2(model), "six_n_params": 6 * params["total"],
        "model_flops_per_token": model_flops_per_token(model, seq_len, params["total"]),
        "tokens": tokens, "compute": m * tokens, "seq_len": seq_len,
    }
