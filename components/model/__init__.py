"""The model: DeepSeek-architecture presets as `LlamaForCausalLM`, and their FLOPs accounting."""

from components.model.accounting import accounting, flops_per_token, model_flops_per_token, six_n1, six_n2
from components.model.build import build_model, count_parameters, llama_config

__all__ = ["accounting", "build_model", "count_parameters", "flops_per_token", "llama_config",
           "model_flops_per_token", "six_n1", "six_n2"]
