"""Where replies come from: a local checkpoint through the request engine, or any
OpenAI-compatible endpoint (our server, vLLM, SGLang, a hosted SEA-LION API).

Both take the same :class:`Request` list and report each finished request through one
callback, so the runner, the store and the scores do not care which one ran. A request that
fails (a broken image, a context overflow, an endpoint that keeps answering 500) is reported
with an error string, never raised: one bad item must not end a run of thousands.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field

Done = Callable[["Request", "str | None", "str | None", dict], None]


@dataclass
class Request:
    """One generation to make: the item's conversation and its settings.

    Attributes:
        key: the store key (see :func:`sealion_vl.eval.store.item_key`).
        messages: one user turn, text then images (bytes).
        max_tokens: the task's generation budget.
        seed: the run's seed.
        settings: generation settings beyond the checkpoint's defaults (temperature, ...).
        size: a cost estimate used to bucket similar lengths together.
    """

    key: str
    messages: list[dict]
    max_tokens: int
    seed: int
    settings: dict = field(default_factory=dict)
    size: int = 0


class LocalBackend:
    """Replies from a :class:`sealion_vl.ChatModel` (continuous batching on this machine).

    A task's ``max_tokens`` larger than the room left in the context is cut to fit (XM3600's
    1024 on a small-context model); only a prompt that does not fit at all is an error item.
    Keeps ``window`` requests queued in the engine at once: enough to fill its batch, few
    enough that encoded images of thousands of items are not all held in memory.
    """

    def __init__(self, model, window: int | None = None) -> None:
        self.model = model
        self.window = window or 2 * getattr(model.scheduler, "max_batch", 16)

    def describe(self) -> dict:
        return {"model": self.model.name, "endpoint": None}

    def run(self, requests: list[Request], done: Done) -> None:
        pending: dict = {}
        queue = list(requests)
        queue.reverse()
        while queue or pending:
            while queue and len(pending) < self.window:
                req = queue.pop()
                try:
                    fut = self.model.submit(  # a task's budget is a cap: fit it to the context
                        req.messages,
                        max_new_tokens=req.max_tokens,
                        seed=req.seed,
                        clamp_to_context=True,
                        **req.settings,
                    )
                except Exception as e:  # noqa: BLE001 - recorded as this item's error
                    done(req, None, _describe(e), {})
                    continue
                pending[fut.future] = req
            if not pending:
                continue
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for f in finished:
                req = pending.pop(f)
                try:
                    res = f.result()
                except Exception as e:  # noqa: BLE001
                    done(req, None, _describe(e), {})
                    continue
                done(req, res.text, None, _usage(res))


def _usage(res) -> dict:
    return {
        "finish_reason": res.finish_reason,
        "completion_tokens": res.completion_tokens,
        "reasoning": res.reasoning,
    }


def _describe(e: BaseException) -> str:
    """``"MediaError: ..."``: the kind tells a data problem from a model problem."""
    return f"{type(e).__name__}: {e}"


_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class EndpointBackend:
    """Replies from an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Args:
        url: the API base (``http://127.0.0.1:8000/v1``).
        model: the model name to send.
        api_key: sent as a bearer token when given.
        concurrency: requests in flight at once.
        max_retries: retries of one request on 429, 5xx or a dropped connection, with
            exponential backoff (honouring ``Retry-After``); then the item is an error item.
        timeout_s: per-request timeout.
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 8,
        max_retries: int = 6,
        timeout_s: float = 600.0,
        backoff_s: float = 1.0,
    ) -> None:
        self.url = url.rstrip("/")
        if not self.url.endswith("/chat/completions"):
            self.url += "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s

    def describe(self) -> dict:
        return {"model": self.model, "endpoint": self.url}

    def check(self) -> None:
        """Fail before the first item when every item would fail the same way: the key is
        refused, or the model is not served there (``GET /models``, where the server has it).
        """
        import httpx

        from sealion_vl.errors import EvalDataError

        base = self.url[: -len("/chat/completions")]
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            r = httpx.get(base + "/models", headers=headers, timeout=30, trust_env=False)
        except httpx.HTTPError as e:
            raise EvalDataError(f"endpoint {base} is not reachable: {e}") from None
        if r.status_code in (401, 403):
            raise EvalDataError(f"endpoint {base} refused the API key (HTTP {r.status_code})")
        if r.status_code != 200:
            return  # no model list here: let the requests tell
        try:
            served = [m["id"] for m in r.json()["data"]]
        except (ValueError, KeyError, TypeError):
            return
        if served and self.model not in served:
            raise EvalDataError(
                f"endpoint {base} does not serve model {self.model!r}; it serves: "
                f"{', '.join(served)} (pass one with --model)"
            )

    def body(self, req: Request) -> dict:
        """The request body: images as base64 data URLs after the text, as SEA-HELM sends."""
        messages = []
        for m in req.messages:
            content = m["content"]
            if not isinstance(content, str):
                content = [_part(p) for p in content]
            messages.append({"role": m["role"], "content": content})
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": req.max_tokens,
            "seed": req.seed,
        }
        for k, v in req.settings.items():
            body["max_tokens" if k == "max_new_tokens" else k] = v
        return body

    def run(self, requests: list[Request], done: Done) -> None:
        asyncio.run(self._run_all(requests, done))

    async def _run_all(self, requests: list[Request], done: Done) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        sem = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(
            timeout=self.timeout_s, headers=headers, limits=limits, trust_env=False
        ) as client:

            async def one(req: Request) -> None:
                async with sem:
                    text, err, usage = await self._one(client, req)
                done(req, text, err, usage)

            await asyncio.gather(*(one(r) for r in requests))

    async def _one(self, client, req: Request) -> tuple[str | None, str | None, dict]:
        import httpx

        body = self.body(req)
        last = ""
        for attempt in range(self.max_retries + 1):
            wait_s = self.backoff_s * 2**attempt * (0.5 + random.random())
            try:
                r = await client.post(self.url, json=body)
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if r.status_code == 200:
                    try:
                        data = r.json()
                        msg = data["choices"][0]["message"]
                        usage = {
                            "finish_reason": data["choices"][0].get("finish_reason"),
                            "completion_tokens": (data.get("usage") or {}).get("completion_tokens"),
                            "reasoning": msg.get("reasoning_content") or msg.get("reasoning"),
                        }
                        return msg.get("content") or "", None, usage
                    except (ValueError, KeyError, IndexError, TypeError) as e:
                        return None, f"malformed reply from {self.url}: {e}", {}
                last = f"HTTP {r.status_code}: {r.text[:300]}"
                if r.status_code not in _RETRY_STATUS:
                    return None, last, {}  # a 400 will not get better by asking again
                wait_s = _retry_after(r) or wait_s
            if attempt < self.max_retries:
                await asyncio.sleep(wait_s)
        # transient: not stored, so rerunning the command retries it
        return None, f"gave up after {self.max_retries + 1} attempts: {last}", {"transient": True}


def _part(part: dict) -> dict:
    if part["type"] != "image":
        return part
    data = part["image"]
    url = f"data:{_mime(data)};base64,{base64.b64encode(data).decode()}"
    return {"type": "image_url", "image_url": {"url": url}}


def _retry_after(r) -> float | None:
    try:
        return min(float(r.headers.get("retry-after", "")), 60.0)
    except ValueError:
        return None


def _mime(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:3] == b"GIF":
        return "image/gif"
    return "image/jpeg"
