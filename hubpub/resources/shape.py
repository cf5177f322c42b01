"""A model's shape from its config alone: parameter counts per component, no weights read.

Only dense decoders of the Llama family (Llama, Mistral, Qwen2/3) are known; anything else raises
`UnknownShape` with the reason, so the plan says it cannot estimate instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpub.checkpoint import text_config, ties_embeddings

DENSE_DECODERS = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
_MOE_KEYS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_intermediate_size", "num_experts_per_tok")
_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
_REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


class UnknownShape(ValueError):
    """The config describes a model the plan cannot size (a mixture of experts, an unknown architecture)."""


@dataclass(frozen=True)
class Linear:
    name: str
    out_features: int
    in_features: int
    bias: bool = False

    @property
    def parameters(self) -> int:
        return self.out_features * self.in_features + (self.out_features if self.bias else 0)


@dataclass(frozen=True)
class ModelShape:
    architecture: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tied_embeddings: bool
    dtype: str = "bfloat16"
    attention_bias: bool = False
    qk_norm: bool = False

    @property
    def dtype_bytes(self) -> int:
        return _DTYPE_BYTES[self.dtype]

    def layer_linears(self, index: int) -> list[Linear]:
        """The Linear modules of decoder layer `index`, named as transformers names them."""
        prefix = f"model.layers.{index}"
        attention, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        bias = self.attention_bias
        return [
            Linear(f"{prefix}.self_attn.q_proj", attention, self.hidden_size, bias),
            Linear(f"{prefix}.self_attn.k_proj", kv, self.hidden_size, bias),
            Linear(f"{prefix}.self_attn.v_proj", kv, self.hidden_size, bias),
            Linear(f"{prefix}.self_attn.o_proj", self.hidden_size, attention),
            Linear(f"{prefix}.mlp.gate_proj", self.intermediate_size, self.hidden_size),
            Linear(f"{prefix}.mlp.up_proj", self.intermediate_size, self.hidden_size),
            Linear(f"{prefix}.mlp.down_proj", self.hidden_size, self.intermediate_size),
        ]

    def linears(self) -> list[Linear]:
        """Every Linear the quantizer could target, lm_head included (tied or not)."""
        layers = [linear for index in range(self.num_layers) for linear in self.layer_linears(index)]
        return [*layers, Linear("lm_head", self.vocab_size, self.hidden_size)]

    @property
    def layer_norm_parameters(self) -> int:
        return 2 * self.hidden_size + (2 * self.head_dim if self.qk_norm else 0)

    @property
    def layer_parameters(self) -> int:
        return sum(linear.parameters for linear in self.layer_linears(0)) + self.layer_norm_parameters

    @property
    def embedding_parameters(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_parameters(self) -> int:
        """Parameters the untied head adds (a tied head shares the embedding's)."""
        return 0 if self.tied_embeddings else self.vocab_size * self.hidden_size

    @property
    def parameters(self) -> int:
        final_norm = self.hidden_size
        return (
            self.embedding_parameters + self.num_layers * self.layer_parameters + final_norm + self.lm_head_parameters
        )

    @property
    def base_bytes(self) -> int:
        """The checkpoint's weights in their dtype, as safetensors stores them (a tied head once)."""
        return self.parameters * self.dtype_bytes


def shape_from_config(config: dict[str, Any]) -> ModelShape:
    """The shape of a transformers config.json; raises UnknownShape for what the plan cannot size."""
    text = text_config(config)
    moe = [key for key in _MOE_KEYS if text.get(key)]
    architecture = str((config.get("architectures") or text.get("architectures") or ["unknown"])[0])
    if moe:
        raise UnknownShape(
            f"{architecture} is a mixture of experts ({', '.join(moe)} in config.json): the resource plan sizes"
            " dense decoders only, so it cannot estimate this model"
        )
    if architecture not in DENSE_DECODERS:
        raise UnknownShape(
            f"architecture {architecture} is not one the resource plan knows ({', '.join(DENSE_DECODERS)}),"
            " so it cannot estimate this model"
        )
    missing = [key for key in _REQUIRED if not isinstance(text.get(key), int)]
    if missing:
        raise UnknownShape(f"config.json lacks {', '.join(missing)}, so the plan cannot size the model")
    heads = text["num_attention_heads"]
    dtype = str(text.get("torch_dtype") or text.get("dtype") or config.get("torch_dtype") or "bfloat16")
    return ModelShape(
        architecture=architecture,
        hidden_size=text["hidden_size"],
        intermediate_size=text["intermediate_size"],
        num_layers=text["num_hidden_layers"],
        num_heads=heads,
        num_kv_heads=int(text.get("num_key_value_heads") or heads),
        head_dim=int(text.get("head_dim") or text["hidden_size"] // heads),
        vocab_size=text["vocab_size"],
        tied_embeddings=ties_embeddings(config),
        dtype=dtype if dtype in _DTYPE_BYTES else "bfloat16",
        attention_bias=bool(text.get("attention_bias", architecture == "Qwen2ForCausalLM")),
        qk_norm=architecture == "Qwen3ForCausalLM",
    )


_GGUF_ARCHITECTURES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}


def config_from_gguf(path: Path) -> dict[str, Any]:
    """The config.json equivalent of a GGUF file's header (the weights are memory-mapped, never read).

    transformers converts GGUF weights to bfloat16, so that is the dtype of the base hubpub makes.
    """
    from hubpub.resources.gguf_header import read_gguf_header

    header = read_gguf_header(path)
    fields = header.fields
    arch = str(fields.get("general.architecture", "unknown"))
    tensors = header.tensors

    def key(name: str) -> Any:
        return fields.get(f"{arch}.{name}")

    embedding = tensors.get("token_embd.weight", [0, 0])
    config: dict[str, Any] = {
        "architectures": [_GGUF_ARCHITECTURES.get(arch, f"gguf:{arch}")],
        "hidden_size": key("embedding_length"),
        "intermediate_size": key("feed_forward_length"),
        "num_hidden_layers": key("block_count"),
        "num_attention_heads": key("attention.head_count"),
        "num_key_value_heads": key("attention.head_count_kv"),
        "vocab_size": key("vocab_size") or max(embedding),
        "tie_word_embeddings": "output.weight" not in tensors,
        "dtype": "bfloat16",
    }
    if key("expert_count"):
        config["num_local_experts"] = key("expert_count")
    if key("attention.key_length"):
        config["head_dim"] = key("attention.key_length")
    return config
