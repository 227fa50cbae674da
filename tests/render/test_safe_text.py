"""The neutralising functions of :mod:`reconciler.render.safe_text` (issue 14): golden cases,
properties over any text, markdown checked with a CommonMark parser, the log formatter and the
live progress display."""

from __future__ import annotations

import html
import io
import json
import logging
import re
import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from reconciler.render.progress import make_progress
from reconciler.render.safe_text import (
    SafeLogFormatter,
    code_fence,
    markdown_code,
    markdown_text,
    safe_json,
    safe_text,
)

#: C0 and C1 controls and DEL: what a terminal may act on.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
ZWSP = "\u200b"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("majicmix-realistic", "majicmix-realistic"),
        ("MajicMix Realistic v7 → fp16 ✓ 日本語", "MajicMix Realistic v7 → fp16 ✓ 日本語"),
        ("a\n::error title=x::injected", "a\\n::error title=x::injected"),
        ("::error::at the start", "\\x3a:error::at the start"),
        ("   ::notice::indented", "   \\x3a:notice::indented"),
        (": one colon is harmless", ": one colon is harmless"),
        ("x##[error]legacy", "x##\\x5berror]legacy"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("tab\there\r\n", "tab\\there\\r\\n"),
        ("del\x7f c1\x85\x9b", "del\\x7f c1\\x85\\x9b"),
        ("rtl\u202egpj.exe", "rtl\\u202egpj.exe"),
        ("zero\u200bwidth\u2066iso\u2028line", "zero\\u200bwidth\\u2066iso\\u2028line"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("nbsp\u00a0", "nbsp\\xa0"),
        ("back\\slash \\x1b", "back\\slash \\x1b"),
        ("", ""),
    ],
)
def test_safe_text_golden(raw: str, shown: str) -> None:
    assert safe_text(raw) == shown


@given(st.text())
def test_safe_text_leaves_nothing_a_terminal_or_the_runner_obeys(text: str) -> None:
    shown = safe_text(text)
    assert CONTROL.search(shown) is None
    assert shown.isprintable()  # no newline, no bidi control, no separator but the space
    assert not shown.lstrip().startswith("::")
    assert "##[" not in shown
    assert safe_text(shown) == shown  # idempotent: safe twice is safe once


@given(st.text(st.characters(exclude_categories=("C", "Z")) | st.just(" ")))
def test_safe_text_keeps_printable_text_as_it_is(text: str) -> None:
    if "##[" in text or text.lstrip().startswith("::"):
        return  # the two printable forms it must change, tested above
    assert safe_text(text) == text


@given(st.text())
def test_safe_text_loses_no_information(text: str) -> None:
    """Every character is either kept or written as an escape that names its code point."""
    shown = safe_text(text)
    for ch in set(text) - {"\n", "\r", "\t"}:
        if not ch.isprintable():
            point = ord(ch)
            escape = (
                f"\\x{point:02x}"
                if point <= 0xFF
                else f"\\u{point:04x}"
                if point <= 0xFFFF
                else f"\\U{point:08x}"
            )
            assert escape in shown


MARKDOWN = MarkdownIt("commonmark").enable("table")


@given(st.text())
@example("@_")  # the name's first character comes escaped: still no mention
def test_markdown_text_renders_as_exactly_the_safe_text(text: str) -> None:
    """No emphasis, link, code, HTML or comment takes effect: the rendered HTML, unescaped, is
    the safe text itself, with a zero-width space after ``@`` and ``#`` of a mention or ref."""
    rendered = MARKDOWN.renderInline(markdown_text(text))
    expected = re.sub(r"([@#])(?=[A-Za-z0-9_])", "\\1" + ZWSP, safe_text(text))
    assert html.unescape(rendered) == expected
    assert "<" not in rendered  # not one tag


@given(st.text())
def test_markdown_text_and_code_stay_in_their_table_cell(text: str) -> None:
    table = f"| a | b | c |\n|---|---|---|\n| {markdown_code(text)} | {markdown_text(text)} | z |\n"
    rendered = MARKDOWN.render(table)
    assert rendered.count("<td>") == 3
    assert "<td>z</td>" in rendered


@given(st.text(min_size=1))
def test_markdown_code_shows_the_safe_text_literally(text: str) -> None:
    rendered = MARKDOWN.renderInline(markdown_code(text))
    inner = re.fullmatch(r"<code>(.*)</code>", rendered, re.DOTALL)
    assert inner is not None, rendered
    shown = html.unescape(inner.group(1))
    # CommonMark strips one space on each side when both are there (the padding we add).
    assert shown.replace("\\|", "|") in (safe_text(text), safe_text(text).strip(" "))


def test_markdown_golden() -> None:
    assert markdown_text("<!-- x --> @octocat #12 *b* _i_ [l](u) `c` | ~s~ \\") == (
        "&lt;!-- x --&gt; @&#8203;octocat #&#8203;12 \\*b\\* \\_i\\_ \\[l\\](u) \\`c\\` \\| "
        "\\~s\\~ \\\\"
    )
    assert markdown_code("a`b|c") == "``a`b\\|c``"
    assert markdown_code("`x`") == "`` `x` ``"
    assert markdown_code("") == ""
    assert code_fence("a ```` b") == "`````"


@given(
    st.recursive(st.text() | st.integers(), lambda c: st.lists(c) | st.dictionaries(st.text(), c))
)
def test_safe_json_is_the_same_data_and_safe_in_a_log(document: object) -> None:
    text = safe_json(document)
    assert json.loads(text) == document
    assert text.isascii()
    assert CONTROL.search(text.replace("\n", "")) is None
    assert "##[" not in text
    assert not any(line.lstrip().startswith("::") for line in text.splitlines())


@pytest.mark.parametrize(
    "value",
    ["caf\u00e9 \U0001f600 \u202e \x00\x1b\x7f", "lone \ud800 surrogate", 10**30, -1.5e-7],
    ids=["non-ascii", "lone-surrogate", "big-int", "float"],
)
def test_safe_json_escapes_as_ensure_ascii_does_whatever_the_serialiser(value: object) -> None:
    """orjson writes it, or ``json.dumps`` when it cannot (a lone surrogate, a big integer)."""
    document = {"b": [value, {"z": 1, "a": value}], "a": None}
    text = safe_json(document)
    assert json.loads(text) == document
    assert text.isascii()
    assert text.index('"a": null') < text.index('"b"') and text.rindex('"a": ') < text.index('"z"')
    expected = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=True) + "\n"
    if isinstance(value, str):  # the very same text as before, strings included
        assert text == expected


def test_safe_json_writes_nan_as_null_which_json_can_read() -> None:
    assert safe_json({"b": float("nan"), "a": float("inf")}) == '{\n  "a": null,\n  "b": null\n}\n'


def test_safe_json_writes_what_is_not_plain_json_as_json_dumps_does() -> None:
    """A non-string key as json.dumps writes it; a set still refused, as before."""
    assert safe_json({None: 1}) == '{\n  "null": 1\n}\n'
    assert safe_json({2: True, 1: False}) == '{\n  "1": false,\n  "2": true\n}\n'
    with pytest.raises(TypeError) as caught:
        safe_json({"a": {1, 2}})
    assert caught.value.__context__ is None  # json.dumps's own error, nothing in between


def test_log_lines_and_tracebacks_are_neutralised() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeLogFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test_safe_text")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("server said %s", "no\n::error::x\x1b[2J")
        try:
            raise ValueError("boom\x1b]0;t\x07\n::warning::y")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "WARNING server said no\\n::error::x\\x1b[2J\n" in text
    assert "ValueError: boom\\x1b]0;t\\x07\n\\x3a:warning::y" in text  # the traceback's lines
    assert CONTROL.search(text.replace("\n", "")) is None
    assert not any(line.lstrip().startswith("::") for line in text.splitlines())


@pytest.mark.skipif(sys.platform == "win32", reason="terminal output")
def test_the_live_display_shows_hostile_text_escaped() -> None:
    stream = io.StringIO()
    progress = make_progress(stream, interactive=True)
    progress.account_update("studio", "waiting", {"ready": 1})
    progress.event("studio", "- deleted \x1b]0;pwned\x07\x1b[2J[bold]x[/bold]\u202e\n::error::y")
    progress.close()
    text = stream.getvalue()
    for raw in ("\x1b]0;", "\x07", "\x1b[2J", "\u202e", "\n::error"):
        assert raw not in text
    assert "[bold]x[/bold]" in text  # shown as typed, not read as rich markup
