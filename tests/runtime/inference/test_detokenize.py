"""Incremental detokenization: deltas add up to the text, stop strings cut it."""

from __future__ import annotations

from collections.abc import Sequence

from kaito_runtime.inference._detokenize import IncrementalDecoder

# A toy vocabulary: token i decodes to PIECES[i]; token 9 is half of a UTF-8 character.
PIECES = ["he", "llo", " wor", "ld", "!", " END", "ing", " x", "é", "\ufffd"]


def _decode(ids: Sequence[int]) -> str:
    text = "".join(PIECES[i] for i in ids)
    return text.replace("\ufffd\ufffd", "€")  # two halves make one character


def test_deltas_concatenate_to_the_full_text() -> None:
    decoder = IncrementalDecoder(_decode)
    out = [decoder.add([i]) for i in (0, 1, 2, 3, 4)]
    assert "".join(out) + decoder.add([], final=True) == "hello world!"
    assert decoder.token_count == 5


def test_incomplete_characters_are_held_back() -> None:
    decoder = IncrementalDecoder(_decode)
    assert decoder.add([0]) == "he"
    assert decoder.add([9]) == ""
    assert decoder.add([9]) == "€"


def test_stop_string_cuts_the_text_even_across_deltas() -> None:
    decoder = IncrementalDecoder(_decode, stop=("world",))
    emitted = decoder.add([0, 1]) + decoder.add([2])
    assert not decoder.stopped
    emitted += decoder.add([3])
    assert decoder.stopped
    assert emitted == "hello "
    assert decoder.add([4]) == ""


def test_text_that_may_start_a_stop_string_waits_for_the_next_token() -> None:
    decoder = IncrementalDecoder(_decode, stop=(" ENDX",))
    assert decoder.add([0]) == "he"
    assert decoder.add([5]) == ""  # " END" could be the start of " ENDX"
    assert decoder.add([4]) == " END!"
