"""Stop strings: the streamed text is cut exactly where a naive search cuts it, at linear cost."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kaito_runtime.inference._detokenize import IncrementalDecoder
from kaito_runtime.inference._stops import StopMatcher


def _naive(text: str, stops: list[str]) -> tuple[str, bool]:
    """Cut at the first position where a stop string ends (the longest one ending there)."""
    for end in range(1, len(text) + 1):
        ending = [s for s in stops if s and text.endswith(s, 0, end)]
        if ending:
            return text[: end - max(map(len, ending))], True
    return text, False


def _stream(chunks: list[str], stops: list[str]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    out = "".join(matcher.feed(c) for c in chunks)
    return out + matcher.flush(), matcher.stopped


alphabet = st.sampled_from("ab€ ")  # few letters: overlapping partial matches are common


@given(
    chunks=st.lists(st.text(alphabet, max_size=6), max_size=12),
    stops=st.lists(st.text(alphabet, min_size=1, max_size=6), max_size=4),
)
def test_streamed_cut_equals_the_naive_cut_of_the_whole_text(
    chunks: list[str], stops: list[str]
) -> None:
    assert _stream(chunks, stops) == _naive("".join(chunks), stops)


@given(
    chunks=st.lists(st.text(alphabet, max_size=6), max_size=12),
    stops=st.lists(st.text(alphabet, min_size=1, max_size=6), min_size=1, max_size=4),
)
def test_text_is_held_back_only_while_it_can_still_become_a_stop_string(
    chunks: list[str], stops: list[str]
) -> None:
    matcher = StopMatcher(stops)
    sent = ""
    for i, chunk in enumerate(chunks):
        sent += matcher.feed(chunk)
        if matcher.stopped:
            return
        seen = "".join(chunks[: i + 1])
        held = seen[len(sent) :]
        assert seen.startswith(sent)
        # What is held is the longest tail of the text that begins some stop string.
        longest = max(
            (
                k
                for s in stops
                for k in range(1, min(len(s), len(seen)) + 1)
                if seen.endswith(s[:k])
            ),
            default=0,
        )
        assert len(held) == longest


def test_a_500_kb_stop_string_costs_work_in_proportion_to_the_text_only() -> None:
    # The text keeps matching the stop string's beginning, the worst case for a matcher.
    stop = "ab" * 250_000
    matcher = StopMatcher([stop])
    pieces = ["ab"] * 500
    assert all(matcher.feed(p) == "" for p in pieces)  # all of it may still become the stop
    automaton = matcher._automata[0]
    assert automaton.state == 1000
    assert len(automaton.fail) <= 1000  # the table grew with the text, not with the pattern
    assert matcher.flush() == "ab" * 500


def test_the_decoder_decodes_a_window_of_tokens_not_the_whole_output() -> None:
    lengths: list[int] = []

    def decode(ids: list[int] | tuple[int, ...]) -> str:
        lengths.append(len(ids))
        return "".join(chr(ord("a") + i % 26) for i in ids)

    decoder = IncrementalDecoder(decode)
    text = "".join(decoder.add([i]) for i in range(2000)) + decoder.add([], final=True)
    assert text == "".join(chr(ord("a") + i % 26) for i in range(2000))
    assert max(lengths) <= 2
