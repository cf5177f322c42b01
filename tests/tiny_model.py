"""A tiny Llama built and trained in the test run, so the fast tier needs no download.

It learns a handful of chat exchanges by heart, which is enough for greedy generation to give
a sensible answer and for perplexity to be finite: everything the pipeline checks.
"""

from __future__ import annotations

import json
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
EXCHANGES = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    ("What is the capital of Spain?", "The capital of Spain is Madrid."),
    ("What colour is the sky?", "The sky is blue on a clear day."),
    ("How many days are in a week?", "A week has seven days."),
]
SPECIALS = ["<unk>", "<|im_start|>", "<|im_end|>", "<pad>"]


def _conversation(question: str, answer: str) -> str:
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>\n"


def build_tiny_llama(folder: Path, steps: int = 300, *, heads: int = 4, kv_heads: int = 2) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    texts = [_conversation(question, answer) for question, answer in EXCHANGES]
    backend = Tokenizer(models.WordLevel(vocab={}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    vocabulary = list(SPECIALS)
    for text in texts:
        for piece, _ in backend.pre_tokenizer.pre_tokenize_str(text):
            if piece not in vocabulary:
                vocabulary.append(piece)
    backend.model = models.WordLevel(vocab={token: index for index, token in enumerate(vocabulary)}, unk_token="<unk>")
    backend.add_special_tokens(SPECIALS[1:3])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        bos_token=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=64 * ((len(vocabulary) + 63) // 64),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "tiny-model.json").write_text(json.dumps({"final_loss": float(loss.detach())}), encoding="utf-8")
    return folder


def build_tiny_opt(folder: Path) -> Path:
    """A random two-layer OPT: an architecture llm-compressor has no SmoothQuant or AWQ mappings for, whose layer
    names (self_attn_layer_norm, fc1, final_layer_norm) match none of the default ones either."""
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    torch.manual_seed(0)
    config = OPTConfig(
        vocab_size=128,
        hidden_size=64,
        ffn_dim=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        word_embed_proj_dim=64,
    )
    OPTForCausalLM(config).save_pretrained(folder)
    return folder
