"""The model: DeepSeek-architecture presets as `LlamaForCausalLM`, their FLOPs accounting and activation
checkpointing."""

from components.model.accounting import accounting, flops_per_token, model_flops_per_token, six_n1, six_n2
from components.model.build import build_model, count_parameters, llama_config
from components.model.checkpointing import MODES as CHECKPOINTING_MODES
from components.model.checkpointing import apply_activation_checkpointing

__all__ = ["CHECKPOINTING_MODES", "accounting", "apply_activation_checkpointing", "build_model", "count_parameters",
           "flops_per_token", "llama_config", "model_flops_per_token", "six_n1", "six_n2"]
