"""What a caller holds while the scheduler works: a future per request, and the decoder
that turns the scheduler's events into typed deltas for streams.

Both are driven from the scheduler thread through ``ChatFuture.sink``; neither may block
or raise there (a broken consumer must not stop the step loop).
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable

from sealion_vl.runtime.generation import ChatResult, holdback


class ChatFuture:
    """A submitted request: ``result()``, ``cancel()``, or iterate its typed deltas.

    Thread-safe; ``asyncio.wrap_future(f.future)`` awaits it from an event loop.
    """

    def __init__(self, parse_tools: bool, build: Callable, wake: Callable[[], None]) -> None:
        """``build(finished, future)`` makes the :class:`ChatResult`; ``wake()`` tells the
        scheduler to look at cancellations now."""
        self.parse_tools = parse_tools  # tools were offered: read tool calls from the reply
        self.reasoning_open = False  # the prompt itself opened a thinking block
        self.stop_strings: list[str] = []
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.cancel_event = threading.Event()
        self._build = build
        self._wake = wake
        self._listeners: list = []
        self._lock = threading.Lock()

    def sink(self, event: tuple) -> None:
        """Called from the scheduler thread: must neither block nor raise."""
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            fn(event)
        kind = event[0]
        if kind == "done":
            try:
                self.future.set_result(self._build(event[1], self))
            except Exception as e:  # a bug in result assembly fails this request only
                self.future.set_exception(e)
        elif kind == "error":
            self.future.set_exception(event[1])

    def listen(self, fn) -> None:
        """Call ``fn(event)`` for every scheduler event from now on (must not block)."""
        with self._lock:
            self._listeners.append(fn)

    def result(self, timeout: float | None = None) -> ChatResult:
        """Wait for the reply; raises what the request raised."""
        return self.future.result(timeout)

    def done(self) -> bool:
        return self.future.done()

    def cancel(self) -> None:
        """End generation at the next step; the result says ``finish_reason="cancelled"``."""
        self.cancel_event.set()
        self._wake()


class DeltaDecoder:
    """One request's text-so-far -> typed deltas (content, reasoning, tool calls).

    Text that might still become a stop string is held back; what is released goes through
    the family's incremental reply parser, which holds back partial markup tags itself.
    Used by :meth:`ChatModel.stream` / ``astream`` and by the server's SSE streams.
    """

    def __init__(self, adapter, fut: ChatFuture) -> None:
        self.parser = adapter.reply_stream(tools=fut.parse_tools, reasoning_open=fut.reasoning_open)
        self.stops = list(fut.stop_strings)
        self.sent = ""

    def text(self, so_far: str) -> list:
        """Deltas for a ``("text", so_far, n)`` event."""
        return self._release(so_far[: len(so_far) - holdback(so_far, self.stops)])

    def finish(self, raw_text: str) -> list:
        """The remaining deltas, given the finished reply's raw text (stop string cut)."""
        return self._release(raw_text) + list(self.parser.finish())

    def feed(self, ev: tuple) -> list:
        """Deltas for one scheduler event; an ``error`` event is raised."""
        if ev[0] == "error":
            raise ev[1]
        return self.text(ev[1]) if ev[0] == "text" else self.finish(ev[1].text)

    def _release(self, ready: str) -> list:
        if not ready.startswith(self.sent) or len(ready) <= len(self.sent):
            return []
        delta, self.sent = ready[len(self.sent) :], ready
        return list(self.parser.feed(delta))
