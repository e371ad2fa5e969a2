"""Visible text of an HTML document, through a real HTML5 parser (selectolax's lexbor).

Rules: script, style and other non-text elements are dropped; entities are
decoded; block elements (p, div, li, h1..h6, tr, br, ...) end a line; inside
normal text every run of whitespace becomes one space, while ``<pre>`` and
``<textarea>`` keep their whitespace. Text without ``<`` or ``&`` has no markup
and is returned unchanged.
"""

from __future__ import annotations

import re

_SKIP = frozenset(
    {"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "canvas"}
)
_BLOCK = frozenset(
    """address article aside blockquote body br caption dd details dialog div dl dt fieldset
    figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr html legend li main nav ol
    option p pre section summary table tbody td tfoot th thead title tr ul""".split()
)
_PRE = frozenset({"pre", "textarea"})
_SPACES = re.compile(r"\s+")


class _TextWriter:
    """Collects text pieces, folding whitespace and block breaks into clean lines."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.line_start = True

    def text(self, s: str, pre: bool) -> None:
        if not pre:
            s = _SPACES.sub(" ", s)
            if self.line_start or self.parts[-1].endswith(" "):
                s = s.lstrip(" ")  # one space between adjacent text nodes
        if s:
            self.parts.append(s)
            self.line_start = s.endswith("\n")

    def newline(self) -> None:
        if self.line_start:
            return  # consecutive block boundaries make one line break
        self.parts[-1] = self.parts[-1].rstrip(" ")
        self.parts.append("\n")
        self.line_start = True

    def result(self) -> str:
        return "".join(self.parts).strip()


def html_to_text(html: str) -> str:
    """The visible text of `html` (a page or a fragment), one line per block element."""
    if "<" not in html and "&" not in html:
        return html
    from selectolax.lexbor import LexborHTMLParser

    root = LexborHTMLParser(html).root
    if root is None:
        return ""
    out = _TextWriter()
    # Iterative depth-first walk with explicit exit markers: block elements need a
    # line break after their content too, and deep pages must not hit recursion limits.
    stack: list[tuple[object, bool, int]] = [(root, False, 0)]
    while stack:
        node, leaving, pre_depth = stack.pop()
        tag = node.tag
        if leaving:
            out.newline()
            continue
        if tag == "-text":
            out.text(node.text_content or "", pre_depth > 0)
            continue
        if tag in _SKIP or tag.startswith("-"):  # comments, doctype
            continue
        if tag in _BLOCK:
            out.newline()
            stack.append((node, True, pre_depth))
        inner = pre_depth + (tag in _PRE)
        children = []
        child = node.first_child
        while child is not None:
            children.append(child)
            child = child.next
        stack.extend((c, False, inner) for c in reversed(children))
    return out.result()
