"""Quality checks on what a model produced."""

from __future__ import annotations

from collections import Counter
from importlib.resources import files
from pathlib import Path

_REPEAT_SHARE = 0.6
_MIN_WORDS_FOR_REPEAT_CHECK = 8


def degeneracy(text: str) -> str | None:
    """Why an output is unusable (empty, or one phrase filling most of it), or None when it is fine."""
    words = text.split()
    if not words:
        return "empty output"
    if len(words) < _MIN_WORDS_FOR_REPEAT_CHECK:
        return None
    for size in (1, 2, 3, 4):
        grams = Counter(tuple(words[index : index + size]) for index in range(len(words) - size + 1))
        phrase, count = grams.most_common(1)[0]
        if count >= 3 and count * size >= _REPEAT_SHARE * len(words):
            return f"'{' '.join(phrase)}' repeats {count} times in {len(words)} words"
    return None


def heldout_text() -> Path:
    """The fixed held-out text on which base and quantized perplexity are compared."""
    return Path(str(files("hubpub") / "data" / "heldout.txt"))
