from __future__ import annotations

import pytest

from hubpub.quality import degeneracy


@pytest.mark.parametrize(
    "text",
    [
        "The capital of Germany is Berlin.",
        "Paris",
        "The largest ocean on Earth is the Pacific Ocean, which covers about a third of the planet.",
    ],
)
def test_sensible_answers_pass(text: str) -> None:
    assert degeneracy(text) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty output"),
        ("   \n ", "empty output"),
        ("the the the the the the the the the the", "'the' repeats 10 times in 10 words"),
        ("Paris is Paris is Paris is Paris is Paris is", "'Paris is' repeats 5 times in 10 words"),
        ("I think so. I think so. I think so. I think so. Yes", "repeats 4 times in 13 words"),
    ],
)
def test_degenerate_outputs_are_named(text: str, reason: str) -> None:
    found = degeneracy(text)
    assert found is not None and reason in found
