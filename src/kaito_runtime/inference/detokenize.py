"""Incremental detokenization with stop strings, shared by the backends that stream token ids."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
        self._stop = tuple(s for s in stop if s)
        self._ids: list[int] = []
        self._sent = 0
        self.stopped = False

    @property
    def token_count(self) -> int:
        """Return how many tokens were added."""
        return len(self._ids)

    def add(self, token_ids: Sequence[int], *, final: bool = False) -> str:
        """Add tokens and return the text that can be emitted now ('' if none)."""
        if self.stopped:
            return ""
        self._ids.extend(token_ids)
        text = self._decode(self._ids)
        if self._stop:
            # Search from a little before the unsent text, so a stop string that straddles two
            # deltas is still found.
            start = max(0, self._sent - max(len(s) for s in self._stop))
            cuts = [i for i in (text.find(s, start) for s in self._stop) if i >= 0]
            if cuts:
                cut = min(cuts)
                self.stopped = True
                delta = text[self._sent : cut] if cut > self._sent else ""
                self._sent = max(self._sent, cut)
                return delta
            # Hold back a tail that may be the start of a stop string.
            held = max(
                (k for s in self._stop for k in range(1, len(s)) if text.endswith(s[:k])),
                default=0,
            )
            if not final:
                ready = len(text) - held
                if text[:ready].endswith(REPLACEMENT):
                    return ""
                delta = text[self._sent : ready] if ready > self._sent else ""
                self._sent = max(self._sent, ready)
                return delta
        if not final and text.endswith(REPLACEMENT):
            return ""
        delta = text[self._sent :]
        self._sent = len(text)
        return delta
