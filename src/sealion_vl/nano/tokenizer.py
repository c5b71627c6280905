"""Byte-level BPE tokenizers holding a family's real special tokens and chat template.

Used for nano (Gemma 3 tokens, trained on the synthetic corpus) and by the test fixtures
(all three families). Byte-level, so every script (Thai, Burmese, Tamil...) encodes
without unknown tokens, and "\\n" is a real token (the pipeline needs it to strip prompts).
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from sealion_vl.families import ADAPTERS, get_adapter

# Special tokens as the real checkpoints name them (facts.md §2, §5): each family adapter
# owns its table; this name stays for the code and fixtures that read it from here.
SPECIALS = {name: adapter.special_tokens for name, adapter in ADAPTERS.items()}


# GPT-2's split into words, numbers, punctuation and spaces, with one change: combining
# marks (\p{M}) count as letters. Thai, Burmese and Tamil write most vowels as combining
# marks, so GPT-2's ``\p{L}+`` cut "สีแดง" (red) into ส|ี|แดง and BPE, which never merges
# across pieces, could not learn a word token: nano's Burmese and Tamil option words took
# 6-7 tokens against 1.1 for English, and its MCQ letter lookup (matching the word it wrote
# against the option lines) worked for Latin-script languages only. With marks as letters
# they take 1-1.1 tokens and SEA text about 16% fewer. Gemma's own SentencePiece tokenizer
# has no such split at all.
WORD_SPLIT = (
    r"'s|'t|'re|'ve|'m|'ll|'d| ?[\p{L}\p{M}]+| ?\p{N}+| ?[^\s\p{L}\p{M}\p{N}]+|\s+(?!\S)|\s+"
)


def train_tokenizer(
    family: str, corpus: Iterable[str], vocab_size: int = 512
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``corpus`` with ``family``'s special tokens and template.

    Args:
        family: ``gemma3`` | ``qwen3_vl`` | ``gemma4``.
        corpus: texts to learn merges from (a list or any re-iterable).
        vocab_size: target size including the 256 byte symbols and the special tokens.
    """
    spec = SPECIALS[family]
    specials = list(
        dict.fromkeys(list(spec["base"].values()) + spec["other"] + list(spec["named"].values()))
    )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(WORD_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        extra_special_tokens=spec["named"],
        chat_template=get_adapter(family).chat_template,
        padding_side="left",
        **spec["base"],
    )
    if family == "qwen3_vl":
        fast.add_bos_token = False  # Qwen has no bos token in its prompts
    return fast
