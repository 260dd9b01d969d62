"""Fault injection for tests: failed requests (500, 429 with ``Retry-After``, ...), connections
closed without an answer, added latency, dropped watches and compacted history (to force
``410 Gone``), all controlled from Python."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol

import anyio
import attrs

from kaito.cluster._errors import StatusError, internal_error, too_many_requests
from kaito.cluster._store import GroupResource, Storage

__all__ = ("DROP_CONNECTION", "ConnectionDrop", "FaultRule", "Faults", "RequestInfo", "WatchHandle")


@attrs.frozen
class RequestInfo:
    """What a fault rule can match on."""

    method: str
    path: str
    verb: str
    """``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``, ``delete``,
    ``deletecollection`` or ``discovery``."""
    group: str = ""
    resource: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""


class WatchHandle(Protocol):
    """Protocol: an open watch stream the fault injector can end."""

    resource: GroupResource

    def end(self, *, abort: bool) -> None:
        """End the stream cleanly, or drop the connection without a proper end when ``abort``."""
        ...


@attrs.frozen
class _Match:
    verb: str | None
    resource: str | None
    namespace: str | None
    name: str | None
    subresource: str | None
    when: Callable[[RequestInfo], bool] | None

    def matches(self, info: RequestInfo) -> bool:
        return (
            (self.verb is None or self.verb == info.verb)
            and (self.resource is None or self.resource == info.resource)
            and (self.namespace is None or self.namespace == info.namespace)
            and (self.name is None or self.name == info.name)
            and (self.subresource is None or self.subresource == info.subresource)
            and (self.when is None or self.when(info))
        )


class ConnectionDrop:
    """What :meth:`Faults.before_request` returns for a request to drop without an answer."""

    def __repr__(self) -> str:
        return "DROP_CONNECTION"


DROP_CONNECTION = ConnectionDrop()


@attrs.define(eq=False)
class FaultRule:
    """One installed fault; use as a context manager or call :meth:`remove`.

    ``hits`` counts the requests it acted on. A request gets at most one answer: a failing or
    disconnecting rule that matches a request an earlier rule already answers is skipped (not
    counted, not used up), so rules installed one after another answer requests in turn.
    """

    _owner: Faults
    status: int | None
    delay: float
    retry_after: int | None
    message: str
    remaining: int | None
    match: _Match
    hits: int = 0
    disconnect: bool = False

    @property
    def answers(self) -> bool:
        """Whether it answers requests (with an error, or by closing the connection)."""
        return self.status is not None or self.disconnect

    def matches(self, info: RequestInfo) -> bool:
        """Whether this rule applies to a request."""
        return self.match.matches(info)

    def remove(self) -> None:
        """Uninstall the rule (idempotent)."""
        self._owner._remove(self)

    def __enter__(self) -> FaultRule:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


def _error(status: int, message: str, retry_after: int | None) -> StatusError:
    if status == 429:
        return too_many_requests(retry_after or 1)
    if status == 500:
        error = internal_error(message or "injected fault")
    else:
        reasons = {
            400: "BadRequest",
            401: "Unauthorized",
            403: "Forbidden",
            404: "NotFound",
            405: "MethodNotAllowed",
            409: "Conflict",
            410: "Expired",
            422: "Invalid",
            502: "InternalError",
            503: "ServiceUnavailable",
            504: "Timeout",
        }
        fallback = "BadRequest" if status < 500 else "InternalError"
        error = StatusError(
            status, reasons.get(status, fallback), message or f"injected fault ({status})"
        )
    if retry_after is not None:
        error.headers["Retry-After"] = str(retry_after)
        error.details = {**(error.details or {}), "retryAfterSeconds": retry_after}
    return error


class Faults:
    """The fault-injection handle of a running cluster (``cluster.faults``)."""

    def __init__(self, store: Storage) -> None:
        self._store = store
        self._rules: list[FaultRule] = []
        self._watches: set[WatchHandle] = set()

    @property
    def active(self) -> bool:
        """Whether any rule is installed (the request path checks this first)."""
        return bool(self._rules)

    def fail(
        self,
        status: int = 500,
        *,
        times: int | None = 1,
        retry_after: int | None = None,
        message: str = "",
        verb: str | None = None,
        resource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
        when: Callable[[RequestInfo], bool] | None = None,
    ) -> FaultRule:
        """Answer matching requests with ``status`` (429 carries ``Retry-After``), ``times`` times
        (``None``: until removed)."""
        return self._add(
            status=status,
            delay=0.0,
            retry_after=retry_after,
            message=message,
            times=times,
            match=_Match(verb, resource, namespace, name, subresource, when),
        )

    def disconnect(
        self,
        *,
        times: int | None = 1,
        verb: str | None = None,
        resource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
        when: Callable[[RequestInfo], bool] | None = None,
    ) -> FaultRule:
        """Close the connection of matching requests without answering, ``times`` times
        (``None``: until removed); clients see the server hang up, as when it crashes."""
        return self._add(
            status=None,
            delay=0.0,
            retry_after=None,
            message="",
            times=times,
            match=_Match(verb, resource, namespace, name, subresource, when),
            disconnect=True,
        )

    def delay(
        self,
        seconds: float,
        *,
        times: int | None = None,
        verb: str | None = None,
        resource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
        when: Callable[[RequestInfo], bool] | None = None,
    ) -> FaultRule:
        """Add ``seconds`` of latency before matching requests are served."""
        return self._add(
            status=None,
            delay=seconds,
            retry_after=None,
            message="",
            times=times,
            match=_Match(verb, resource, namespace, name, subresource, when),
        )

    def _add(
        self,
        *,
        status: int | None,
        delay: float,
        retry_after: int | None,
        message: str,
        times: int | None,
        match: _Match,
        disconnect: bool = False,
    ) -> FaultRule:
        if status is not None and not 400 <= status <= 599:
            raise ValueError(
                f"status={status} must be an HTTP error code (400-599), e.g. 500 or 429"
            )
        if times is not None and times < 1:
            raise ValueError(f"times={times} must be at least 1, or None for every request")
        rule = FaultRule(
            self,
            status=status,
            delay=delay,
            retry_after=retry_after,
            message=message,
            remaining=times,
            match=match,
            disconnect=disconnect,
        )
        self._rules.append(rule)
        return rule

    def _remove(self, rule: FaultRule) -> None:
        if rule in self._rules:
            self._rules.remove(rule)

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()

    async def before_request(self, info: RequestInfo) -> StatusError | ConnectionDrop | None:
        """Apply matching rules: sleep for delays; return the error to answer with, or
        :data:`DROP_CONNECTION` when the connection is to be closed unanswered, if any."""
        delay = 0.0
        outcome: StatusError | ConnectionDrop | None = None
        for rule in list(self._rules):
            if not rule.matches(info) or (rule.answers and outcome is not None):
                continue
            rule.hits += 1
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._remove(rule)
            delay += rule.delay
            if rule.disconnect:
                outcome = DROP_CONNECTION
            elif rule.status is not None:
                outcome = _error(rule.status, rule.message, rule.retry_after)
        if delay:
            await anyio.sleep(delay)
        return outcome

    # ------------------------------------------------------------------ watches and history

    def register_watch(self, handle: WatchHandle) -> Callable[[], None]:
        """Track an open watch stream; returns its unregister function."""
        self._watches.add(handle)
        return lambda: self._watches.discard(handle)

    @property
    def open_watches(self) -> int:
        """How many HTTP watch streams are open."""
        return len(self._watches)

    def drop_watches(self, resource: str | None = None, *, abort: bool = False) -> int:
        """End open watch streams (of one plural resource name, or all); returns how many.

        ``abort=False`` ends the chunked response cleanly (a server-side timeout, as clients
        see it); ``abort=True`` closes the connection mid-stream.
        """
        dropped = 0
        for handle in list(self._watches):
            if resource is None or handle.resource.resource == resource:
                handle.end(abort=abort)
                dropped += 1
        return dropped

    async def compact(self) -> int:
        """Forget all history: watches and continue tokens from older versions get 410."""
        return await self._store.compact()
