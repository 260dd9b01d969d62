"""Stop-string matching over streamed text, linear in the text whatever the stop strings' length.

Each stop string is a Knuth-Morris-Pratt automaton fed one character at a time. Its failure
table is built lazily, only as far as the text has matched, so the work for a request is
proportional to the generated text (times the number of stop strings), never to the length of a
stop string: a 500 KB stop string costs what a one-character one does until the text actually
starts to match it. The automaton's state is also the longest tail of the text that could still
become a stop string, which is exactly what must be held back from a stream.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ("StopMatcher",)


class _Automaton:
    """A KMP matcher for one pattern whose failure table grows with the matched prefix."""

    __slots__ = ("fail", "pattern", "state")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        # fail[i]: length of the longest proper border of pattern[: i + 1]; built while
        # len(fail) < state requires it.
        self.fail = [0]
        self.state = 0

    def _extend(self, upto: int) -> None:
        pattern, fail = self.pattern, self.fail
        border = fail[-1]
        for i in range(len(fail), upto):
            while border and pattern[i] != pattern[border]:
                border = fail[border - 1]
            if pattern[i] == pattern[border]:
                border += 1
            fail.append(border)

    def step(self, char: str) -> bool:
        """Advance by one character; return True when the pattern has just been matched."""
        pattern, state = self.pattern, self.state
        while state and pattern[state] != char:
            state = self.fail[state - 1]
        if pattern[state] == char:
            state += 1
        if state == len(pattern):
            self.state = state
            return True
        if state > len(self.fail):
            self._extend(state)
        self.state = state
        return False


class StopMatcher:
    """Cut a stream of text at the first stop string, holding back what may start one.

    :meth:`feed` takes text as it is produced and returns the part that can be sent now; once a
    stop string is complete it returns the text before it and :attr:`stopped` becomes true.
    :meth:`flush` returns the held-back tail at the end of the generation.
    """

    def __init__(self, stops: Sequence[str] = ()) -> None:
        self._automata = [_Automaton(s) for s in stops if s]
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Add ``text``; return what can be emitted (cut before a stop string once one is found)."""
        if self.stopped:
            return ""
        if not self._automata:
            return text
        buffer = self._held + text
        base = len(self._held)
        automata = self._automata
        for offset, char in enumerate(text):
            ends = [a for a in automata if a.step(char)]
            if ends:
                # The longest stop string ending here started first.
                cut = base + offset + 1 - max(len(a.pattern) for a in ends)
                self.stopped = True
                self._held = ""
                return buffer[:cut]
        keep = max(a.state for a in automata)
        ready = len(buffer) - keep
        self._held = buffer[ready:]
        return buffer[:ready]

    def flush(self) -> str:
        """Return the held-back text: the generation ended before it became a stop string."""
        held, self._held = self._held, ""
        return "" if self.stopped else held
