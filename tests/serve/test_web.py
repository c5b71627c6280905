"""The web chat page in a real browser against the real server.

Headless Chromium (Debian's ``chromium`` package, driven by Playwright through its
``executable_path``) opens ``/`` of a server on a loopback port that serves a tiny checkpoint
behind an API key, attaches a PNG through the file input and reads a streamed reply off the
page. Reasoning and tool calls are scripted with a forward hook on the model's output head
(as in tests/runtime/test_engine_tools.py), so the page shows what the real engine, parser
and SSE stream produced.
"""

from __future__ import annotations

import base64
import json
import re

import pytest

from tests.fixtures.browser import CHROMIUM, MISSING, launch_chromium
from tests.fixtures.scripted import Script
from tests.serve.conftest import KEY, start

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=MISSING)
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def servers(serve_model):
    running: dict = {}

    def get(kind: str):
        if kind not in running:
            running[kind] = start(serve_model(kind))
        return running[kind]

    yield get
    for s in running.values():
        s.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1000, "height": 720})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def _open(page, server, key: str = KEY, max_tokens: int = 24):
    page.goto(server.url + "/")
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_label("API key", exact=True).press("Enter")
    page.get_by_text("Settings").click()
    page.get_by_label("Max new tokens").fill(str(max_tokens))
    page.get_by_label("Temperature").fill("0")  # greedy: the tiny model's reply is fixed


def _chat_requests(page) -> list:
    seen: list = []
    page.on(
        "request",
        lambda r: seen.append(r) if r.url.endswith("/v1/chat/completions") else None,
    )
    return seen


def test_message_with_image_gets_a_streamed_reply(page, servers, media_dir):
    server = servers("gemma3")
    sent = _chat_requests(page)
    _open(page, server)
    page.wait_for_function("document.getElementById('model').value !== ''")
    assert page.locator("#model option").all_inner_texts() == ["gemma3"]
    assert page.locator("#error").is_hidden()  # the key was accepted for /v1/models
    page.get_by_label("Answer language").select_option(label="Bahasa Indonesia")
    page.locator("#file").set_input_files(media_dir / "a.png")
    expect(page.get_by_role("img", name="a.png")).to_be_visible()  # the thumbnail (async read)
    page.get_by_label("Message", exact=True).fill("Apa yang ada di gambar ini?")
    # record every length the reply text takes while it streams in
    page.evaluate(
        """() => { window.lengths = [];
        new MutationObserver(() => { const t = document.querySelector('.msg.assistant .text');
          if (t) window.lengths.push(t.textContent.length); })
        .observe(document.getElementById('log'), {subtree: true, childList: true,
                                                   characterData: true}); }"""
    )
    page.get_by_role("button", name="Send").click()
    bubble = page.locator(".msg.assistant")
    page.locator(".msg.assistant[data-state=done]").wait_for()

    text = bubble.locator(".text").inner_text()
    assert text.strip(), "the assistant bubble is empty"
    assert int(bubble.get_attribute("data-chunks")) > 1  # several content deltas applied
    lengths = page.evaluate("window.lengths")
    assert len(set(lengths)) > 2 and lengths == sorted(lengths)  # the text grew step by step
    meta = bubble.locator(".meta").inner_text()
    assert re.fullmatch(r"finish: (stop|length) · \d+ tokens · [\d.]+ s", meta), meta
    assert page.locator(".msg.user img").count() == 1
    assert page.locator("#attachments img").count() == 0  # sent images leave the tray
    assert page.get_by_label("Message", exact=True).input_value() == ""

    (req,) = sent
    body = req.post_data_json
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert body["stream"] is True and body["model"] == "gemma3" and body["max_tokens"] == 24
    assert body["temperature"] == 0
    assert body["messages"][0] == {"role": "system", "content": "Answer in Indonesian."}
    user = body["messages"][1]
    assert user["role"] == "user"
    image = user["content"][0]["image_url"]["url"]
    assert image == "data:image/png;base64," + base64.b64encode(
        (media_dir / "a.png").read_bytes()
    ).decode("ascii")
    assert user["content"][1] == {"type": "text", "text": "Apa yang ada di gambar ini?"}
    assert req.response().headers["content-type"].startswith("text/event-stream")
    page.screenshot(path="/tmp/sealion-vl-web-chat.png", full_page=True)

    # the second turn carries the first reply back as history
    page.get_by_label("Message", exact=True).fill("Terima kasih")
    page.get_by_label("Message", exact=True).press("Enter")
    page.locator(".msg.assistant[data-state=done]").nth(1).wait_for()
    roles = [m["role"] for m in sent[1].post_data_json["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert page.get_by_label("Answer language").input_value() == "Indonesian"


def test_paste_and_drop_attach_images(page, servers, media_dir):
    _open(page, servers("gemma3"))
    png = list((media_dir / "a.png").read_bytes())
    page.evaluate(
        """(bytes) => {
        const file = () => new File([new Uint8Array(bytes)], 'x.png', {type: 'image/png'});
        const paste = new DataTransfer(); paste.items.add(file());
        document.getElementById('message').dispatchEvent(
          new ClipboardEvent('paste', {clipboardData: paste, bubbles: true}));
        const drop = new DataTransfer(); drop.items.add(file());
        document.dispatchEvent(new DragEvent('drop', {dataTransfer: drop, bubbles: true}));
        }""",
        png,
    )
    thumbs = page.locator("#attachments img")
    thumbs.nth(1).wait_for()
    assert thumbs.count() == 2
    page.get_by_role("button", name="Remove x.png").first.click()
    expect(thumbs).to_have_count(1)


def test_wrong_key_shows_the_servers_error(page, servers):
    _open(page, servers("gemma3"), key="not-the-key")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Error 401: wrong API key")
    assert "Enter the server's API key above" in alert.inner_text()
    expect(page.locator("#model option")).to_have_text(["(needs API key)"])
    page.get_by_label("Message", exact=True).fill("Halo")
    page.get_by_role("button", name="Send").click()
    page.wait_for_function("document.getElementById('send').disabled === false")
    assert "Error 401" in alert.inner_text()
    assert page.locator(".msg").count() == 0  # nothing half-sent stays on the page
    assert page.get_by_label("Message", exact=True).input_value() == "Halo"  # kept to resend


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            },
        },
    }
]


def test_reasoning_folded_and_tool_call_shown(page, servers, serve_model):
    m = serve_model("gemma4")
    server = servers("gemma4")
    script = (
        "<|channel>thought\nPerlu cek cuaca.<channel|>"
        '<|tool_call>call:get_weather{city:<|"|>Jakarta<|"|>,days:3}<tool_call|><turn|>'
    )
    ids = m.tokenizer(script, add_special_tokens=False)["input_ids"]
    sent = _chat_requests(page)
    _open(page, server, max_tokens=len(ids) + 5)
    page.get_by_label("Thinking").select_option("on")
    page.get_by_label("Tools").fill(json.dumps(TOOLS))
    page.get_by_label("Message", exact=True).fill("Cuaca Jakarta?")
    with Script(m.model, ids):
        page.get_by_role("button", name="Send").click()
        page.locator(".msg.assistant[data-state=done]").wait_for()
    body = sent[0].post_data_json
    assert body["chat_template_kwargs"] == {"enable_thinking": True}
    assert body["tools"] == TOOLS
    reasoning = page.locator(".msg.assistant details.reasoning")
    assert reasoning.is_visible()
    assert reasoning.evaluate("d => d.open") is False  # folded
    assert page.locator(".msg.assistant .reasoning-text").is_hidden()
    reasoning.locator("summary").click()
    assert page.locator(".msg.assistant .reasoning-text").inner_text().strip() == "Perlu cek cuaca."
    calls = page.get_by_label("Tool calls")
    assert calls.is_visible()
    shown = calls.inner_text()
    assert shown.startswith("Tool call:\nget_weather(")
    assert json.loads(shown.split("get_weather(", 1)[1].rsplit(")", 1)[0]) == {
        "city": "Jakarta",
        "days": 3,
    }
    assert "finish: tool_calls" in page.locator(".msg.assistant .meta").inner_text()
    assert page.locator(".msg.assistant .text").inner_text() == ""
    page.screenshot(path="/tmp/sealion-vl-web-tools.png", full_page=True)
