"""A screenshot of the web chat page mid-conversation (docs/img/chat_page.png).

    python scripts/screenshot_chat.py --run RUN [--out docs/img/chat_page.png]

Starts `lmforge serve --run RUN` on a free port, opens the page in headless Chromium
(Debian's /usr/bin/chromium through Playwright; nothing is downloaded), has one short
chat (it stays in the sidebar's list), starts a new one with greedy decoding
(temperature 0, so the answers are the same every time for a given run), asks the
questions below one after the other and saves the page once the last answer is in. RUN should be a chat run (SFT or later); the docs' picture is of the
demo's SFT run (`make demo`: demo/sft). The browser helpers are tests/serve_helpers.py's,
which tests/test_serve_browser.py uses too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from serve_helpers import (  # noqa: E402 (after the path to tests/)
    CHROMIUM,
    answer_done,
    launch_chromium,
    model_shown,
    open_chat,
    send,
    served,
)

# From the world's validation instructions: questions the demo's SFT run answers right
# (in this order: a 1.3M-parameter model is easily thrown by an earlier turn).
EARLIER = [
    "Is this review positive or negative?\nAt first the hotel in Greyhaven seemed amazing, "
    "but in the end it was miserable."
]
QUESTIONS = [
    "Ingrid has 8 cupcakes. Ingrid buys 3 more cupcakes. How many cupcakes does Ingrid have "
    "now?\nReply with just the number.",
    "At first the theatre show in Oakhurst seemed useless, but in the end it was great.\n"
    "Did the writer like it? Answer positive or negative.",
]
DRAFT = "What is this text about: sports, food, weather or music? The radio kept reporting on"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="the run to serve (a chat run)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "chat_page.png"))
    ap.add_argument("--width", type=int, default=1100)
    ap.add_argument("--height", type=int, default=640)
    args = ap.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"screenshot_chat: {CHROMIUM} not found (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with served(args.run, "--model-name", Path(args.run).resolve().name) as server:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = open_chat(browser, server.url, width=args.width, height=args.height)
            model_shown(page, Path(args.run).resolve().name)
            page.fill("#temperature", "0")
            page.dispatch_event("#temperature", "change")
            for text in EARLIER:
                send(page, text)
                answer_done(page)
            page.click("#new-chat")
            for text in QUESTIONS:
                send(page, text)
                answer_done(page)
            page.locator("#input").fill(DRAFT)  # typed, not sent
            page.evaluate("document.activeElement.blur()")  # no focus ring in the picture
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out)
            browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
