"""Incremental detokenization with stop strings, shared by the backends that stream token ids.

Text is decoded from a small window of the latest tokens (the prefix/read offsets of Hugging
Face's text streamer and vLLM's detokenizer), so each token costs a decode of a few tokens rather
than of the whole output; stop strings are matched by :class:`~.stops.StopMatcher`, linear in
the text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kaito_runtime.inference._stops import StopMatcher

__all__ = ("IncrementalDecoder",)

REPLACEMENT = "\ufffd"


class IncrementalDecoder:
    """Turn a growing list of token ids into text deltas, cutting at the first stop string.

    Text ending in an incomplete UTF-8 sequence (decoded as U+FFFD) is held back until the next
    token completes it. Once a stop string appears, the text before it is emitted and
    :attr:`stopped` becomes true.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str], stop: Sequence[str] = ()) -> None:
        self._decode = decode
        self._matcher = StopMatcher(stop)
        self._ids: list[int] = []
        # Tokens before _prefix are decoded and sent; _prefix:_read is the context whose text
        # was already sent, decoded again so the next token's text comes out right (spaces).
        self._prefix = 0
        self._read = 0

    @property
    def token_count(self) -> int:
        """Return how many tokens were added."""
        return len(self._ids)

    @property
    def stopped(self) -> bool:
        """Whether a stop string has been generated."""
        return self._matcher.stopped

    def _new_text(self, final: bool) -> str:
        window = self._ids[self._prefix :]
        if not window:
            return ""
        sent = (
            self._decode(self._ids[self._prefix : self._read]) if self._read > self._prefix else ""
        )
        text = self._decode(window)
        if len(text) <= len(sent) or (not final and text.endswith(REPLACEMENT)):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return text[len(sent) :]

    def add(self, token_ids: Sequence[int], *, final: bool = False) -> str:
        """Add tokens and return the text that can be emitted now ('' if none)."""
        if self._matcher.stopped:
            return ""
        self._ids.extend(token_ids)
        delta = self._matcher.feed(self._new_text(final))
        if final:
            delta += self._matcher.flush()
        return delta
