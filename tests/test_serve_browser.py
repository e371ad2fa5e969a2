"""The web chat page in headless Chromium against a real `lmforge serve`.

The served run's model can never sample a stop token (serve_helpers.make_endless_run),
so every answer runs to its token limit: long enough to watch it stream and to stop
it. The server needs an API key, so the page's key field is exercised too. Skips
(with the reason) when /usr/bin/chromium is missing, except under CI, where it fails.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from serve_helpers import (
    CHROMIUM,
    answer_done,
    launch_chromium,
    make_endless_run,
    model_shown,
    open_chat,
    send,
    served,
)
from test_pretrain_helpers import make_corpus, make_tokenizer

pytestmark = pytest.mark.slow

KEY = "sk-test-browser"
# Records the last answer's text length at every DOM change of the conversation.
WATCH_LENGTHS = """() => {
  window.__lengths = [];
  new MutationObserver(() => {
    const a = [...document.querySelectorAll('.msg-assistant')].pop();
    if (a) window.__lengths.push(a.querySelector('.msg-body').textContent.length);
  }).observe(document.getElementById('messages'),
             {childList: true, subtree: true, characterData: true});
}"""
LAST_ANSWER_LENGTH = """() => {
  const a = [...document.querySelectorAll('.msg-assistant')].pop();
  return a ? a.querySelector('.msg-body').textContent.length : -1;
}"""


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found: install Debian's chromium package to run the page tests"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_browser")
    make_tokenizer(root / "tok", make_corpus(100))
    run = make_endless_run(root, root / "tok")
    with served(run, "--api-key", KEY, "--slots", "2") as s:
        yield s


def chat_titles(page) -> list[str]:
    return page.locator("#chat-list .chat-open").all_text_contents()


def test_chat_streams_stops_and_keeps_its_chats(server, browser):
    errors = []
    page = open_chat(browser, server.url, errors=errors)
    # No key yet: the server refuses /v1/models and the page says what to do.
    page.wait_for_function("() => !document.getElementById('banner').hidden")
    assert "API key" in page.text_content("#banner")
    page.fill("#api-key", KEY)
    page.press("#api-key", "Enter")
    model_shown(page, "endless")
    assert page.is_hidden("#banner")

    # A 300-token answer arrives in pieces: several lengths are seen before the last one.
    page.evaluate(WATCH_LENGTHS)
    page.fill("#max-tokens", "300")
    send(page, "Where did Anna go?")
    answer = answer_done(page)
    final = page.evaluate(LAST_ANSWER_LENGTH)
    partial = {n for n in page.evaluate("window.__lengths") if 0 < n < final}
    assert final > 0 and len(partial) >= 3, (final, sorted(partial))
    assert answer.locator(".msg-note").text_content() == "Stopped at the token limit."
    assert page.locator(".msg-user .msg-body").all_text_contents() == ["Where did Anna go?"]
    h0 = server.wait_idle()

    # Shift+Enter is a newline, not a send; Enter sends. Then Stop, from the keyboard.
    page.fill("#max-tokens", "")  # all the context leaves: about 1000 tokens
    send(page, "first line\nsecond line")
    page.wait_for_function(f"() => ({LAST_ANSWER_LENGTH})() > 20")
    assert server.health()["running"] == 1  # still generating
    page.focus("#stop")
    page.keyboard.press("Enter")
    answer = answer_done(page)
    assert answer.locator(".msg-note").text_content() == "Stopped."
    h1 = server.wait_idle()  # the disconnect freed the slot
    stopped_at = page.evaluate(LAST_ANSWER_LENGTH)
    time.sleep(0.3)
    assert page.evaluate(LAST_ANSWER_LENGTH) == stopped_at  # nothing arrives after Stop
    assert h1["generated_tokens"] - h0["generated_tokens"] < 900  # cut well short of ~1000
    assert page.locator(".msg-user .msg-body").all_text_contents()[-1] == "first line\nsecond line"
    assert page.is_visible("#send") and page.is_hidden("#stop")

    # A refused request shows the server's message in the conversation.
    page.fill("#max-tokens", "100000")
    send(page, "too long")
    error = page.wait_for_selector(".msg-error")
    assert "max_tokens" in error.text_content() and "400" in error.text_content()

    # New chat: an empty view; after a reload the old chat is still listed, and opens.
    page.click("#new-chat")
    assert page.locator("#messages > *").count() == 0 and page.is_visible("#empty")
    assert chat_titles(page) == ["Where did Anna go?"]
    page.reload()
    model_shown(page, "endless")
    assert page.locator("#messages > *").count() == 0
    assert chat_titles(page) == ["Where did Anna go?"]
    page.click("#chat-list .chat-open")
    roles = page.eval_on_selector_all("#messages .msg", "ns => ns.map(n => n.dataset.role)")
    assert roles == ["user", "assistant", "user", "assistant", "user", "error"]
    assert page.locator(".msg-assistant .msg-note").all_text_contents() == [
        "Stopped at the token limit.", "Stopped."
    ]  # fmt: skip

    # Delete it (after the confirmation): gone, also after a reload.
    page.once("dialog", lambda d: d.accept())
    page.click("#chat-list .chat-delete")
    assert chat_titles(page) == [] and page.is_visible("#no-chats")
    page.reload()
    assert chat_titles(page) == []
    assert errors == []  # no uncaught exception in the page's script
    page.context.close()


XSS_ANSWER = (
    'Hi <img src=x onerror="window.__xss = 1"> and <script>window.__xss = 2</script>\n\n'
    "**bold <b>not html</b>** and `<i>code</i>`\n\n"
    "```html\n<script>window.__xss = 3</script>\n```\n\n"
    "- one <em>x</em>\n- two\n\n1. first\n2. second"
)


def fake_stream(text: str) -> str:
    """An SSE body as the server streams it: the role, the text in pieces, the end."""

    def chunk(delta, finish=None):
        obj = {"object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        return f"data: {json.dumps(obj)}\n\n"

    pieces = [text[i : i + 7] for i in range(0, len(text), 7)]
    body = chunk({"role": "assistant"}) + "".join(chunk({"content": p}) for p in pieces)
    return body + chunk({}, "stop") + "data: [DONE]\n\n"


def test_model_and_user_html_shows_as_text(server, browser):
    """Model text is rendered by the page's own Markdown subset into text nodes: tags in it
    (or in a user message) are shown, never parsed, live or after a reload. The answer is
    a canned stream (the tiny model cannot be made to write HTML); the parser and the
    renderer are the page's own."""
    errors = []
    page = open_chat(browser, server.url, api_key=KEY, errors=errors)
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(
            status=200, content_type="text/event-stream", body=fake_stream(XSS_ANSWER)
        ),
    )
    user = '<img src=x onerror="window.__xss = 4"><script>window.__xss = 5</script>'
    send(page, user)
    answer_done(page)
    for attempt in ("live", "reloaded"):
        assert page.evaluate("window.__xss") is None, attempt
        tags = page.eval_on_selector_all("#messages *", "ns => ns.map(n => n.localName)")
        assert not {"img", "script", "b", "i", "em"} & set(tags), (attempt, tags)
        assert page.locator(".msg-user .msg-body").text_content() == user
        body = page.locator(".msg-assistant .msg-body")
        assert '<img src=x onerror="window.__xss = 1">' in body.text_content()
        assert body.locator("strong").all_text_contents() == ["bold <b>not html</b>"]
        assert body.locator("p > code").all_text_contents() == ["<i>code</i>"]
        assert body.locator("pre > code").text_content() == "<script>window.__xss = 3</script>"
        assert body.locator("ul > li").all_text_contents() == ["one <em>x</em>", "two"]
        assert body.locator("ol > li").all_text_contents() == ["first", "second"]
        page.reload()
        page.wait_for_selector(".msg-assistant")
    assert errors == []
    page.context.close()


def test_chat_unavailable_for_a_model_without_chat(server, browser):
    """The model card says chat: false (a pretraining run): the page says so and the
    message box is off. The card is the server's own, with `chat` flipped."""
    page = open_chat(browser, server.url, api_key=KEY)

    def no_chat(route):
        real = route.fetch()
        card = real.json()
        card["data"][0]["chat"] = False
        route.fulfill(response=real, json=card)

    page.route("**/v1/models", no_chat)
    page.reload()
    page.wait_for_function("() => !document.getElementById('banner').hidden")
    assert "Chat is unavailable" in page.text_content("#banner")
    assert page.is_disabled("#input") and page.is_disabled("#send")
    page.context.close()


def test_narrow_screen(server, browser):
    """At phone width the chat list is a drawer behind a button; nothing overflows."""
    page = open_chat(browser, server.url, api_key=KEY, width=375, height=700)
    model_shown(page, "endless")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    toggle = page.locator("#toggle-sidebar")
    assert toggle.is_visible() and toggle.get_attribute("aria-expanded") == "false"
    box = page.locator("#sidebar").bounding_box()
    assert box["x"] + box["width"] <= 0  # off screen
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    page.wait_for_function(
        "() => document.getElementById('sidebar').getBoundingClientRect().x >= 0"
    )
    page.click("#new-chat")  # choosing closes the drawer
    assert toggle.get_attribute("aria-expanded") == "false"
    assert page.locator("#input").is_visible() and page.locator("#send").is_visible()
    page.context.close()


def test_an_error_mid_stream_keeps_the_partial_answer(server, browser):
    """An error event after some text (the server failed while streaming): the text that
    arrived stays, the error follows it in the conversation. (First a field the page
    itself refuses: the message is not sent and stays in the box.)"""
    page = open_chat(browser, server.url, api_key=KEY)
    failed = {"error": {"message": "internal server error (logged on the server)"}}
    text = fake_stream("Half an answer").rsplit("data: ", 2)[0]  # no finish, no [DONE]
    body = text + f"data: {json.dumps(failed)}\n\n"
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(status=200, content_type="text/event-stream", body=body),
    )
    page.fill("#temperature", "5")  # out of range: refused by the page, message kept
    send(page, "hello")
    assert "Temperature" in page.text_content("#banner")
    assert page.input_value("#input") == "hello" and page.locator(".msg").count() == 0
    page.fill("#temperature", "1")
    page.press("#input", "Enter")
    page.wait_for_selector(".msg-error")
    assert page.is_hidden("#banner")
    assert page.locator(".msg-assistant .msg-body").text_content() == "Half an answer"
    assert "internal server error" in page.locator(".msg-error").text_content()
    roles = page.eval_on_selector_all("#messages .msg", "ns => ns.map(n => n.dataset.role)")
    assert roles == ["user", "assistant", "error"]
    assert page.is_visible("#send") and page.is_hidden("#stop")
    page.context.close()
