"""Cancel a generation when its client disconnects, streamed or not.

ASGI middleware around the generation routes. Once the request body is in, one task watches the
connection; when the client goes away before the response is complete, the handler is cancelled,
and with it the engine's generation (the transformers worker stops at the next token, vLLM
aborts the request). Without it a non-streamed request kept generating for nobody until its
``max_tokens``.
"""

from __future__ import annotations

import anyio
import structlog

from kaito_runtime.inference._asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ("CancelOnDisconnect",)

log = structlog.get_logger(__name__)


class CancelOnDisconnect:
    """Run the handlers of ``paths`` in a scope cancelled when the client disconnects."""

    def __init__(self, app: ASGIApp, *, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in self.paths:
            await self.app(scope, receive, send)
            return
        request: list[Message] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            request.append(message)
            if not message.get("more_body", False):
                break
        gone = anyio.Event()
        answered = False

        async def replay() -> Message:
            # The body as it came, then the disconnect when it happens (StreamingResponse
            # listens for it).
            if request:
                return request.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def tracking_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True  # the last byte is going out: nothing left to cancel
            await send(message)

        handler = anyio.CancelScope()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            if not answered:
                log.info("client_disconnected", path=path)
                handler.cancel()

        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            with handler:
                try:
                    await self.app(scope, replay, tracking_send)
                except Exception as err:  # re-raised as it is, not in an exception group
                    failure = err
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure
