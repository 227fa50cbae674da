"""Neutralise text from outside before it reaches a terminal, a log, markdown or a CI log.

Model ids and messages come from the API server, manifest values and paths from a pull
request, ledger entries from a file: none of them may steer what shows them. A terminal obeys
escape sequences (``ESC [2J`` clears it, ``ESC ]0;…BEL`` retitles it), bidi overrides make text
read differently from what it is, and the GitHub Actions runner reads a log line that starts
with ``::`` (after leading blanks) as a workflow command, and ``##[command]`` anywhere in a
line as a legacy one (``ActionCommand.TryParseV2`` and ``TryParse`` in actions/runner).

So every renderer passes outside text through :func:`safe_text`, which keeps it on one line
and makes every such thing visible instead of effective:

- a character that is not printable (Python's ``str.isprintable``: the Unicode categories
  *Other* and *Separator* except the ASCII space; this covers C0 and C1 controls, DEL, bidi
  overrides, zero-width characters, line and paragraph separators) is written as an escape:
  ``\\n``, ``\\r``, ``\\t``, ``\\x1b``, ``\\u202e``, ``\\U000e0001``;
- ``::`` at the start (after spaces) becomes ``\\x3a:``, and every ``##[`` becomes ``##\\x5b``.

JSON documents go through :func:`safe_json`, which escapes every control and non-ASCII
character (as ``json.dumps`` with ``ensure_ascii`` does), and a line of indented JSON never
starts with ``::``, but a string may still hold ``##[``, which the runner obeys anywhere in a
line.

Printable text comes out unchanged, so ordinary ids, names and messages look as they are.
Backslashes are left alone: ``\\x1b`` typed literally and an escaped ESC look alike, which
misleads nobody into running anything. :func:`markdown_text` and :func:`markdown_code`
add what markdown needs for a pull-request comment or a job summary. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import logging
import re
from types import TracebackType

from reconciler.canonical import sorted_orjson

#: Escapes of the characters people know by a letter.
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Start of a GitHub workflow command (modern form), after the runner's TrimStart.
_COMMAND_START = re.compile(r"^( *):")
#: The legacy ``##[command]`` form, matched anywhere in a line by the runner.
_LEGACY_COMMAND = "##["
#: Markdown punctuation that can open emphasis, links, code, tables or strikethrough.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]|~])")
#: ``#123`` links and notifies an issue; ``@name`` notifies a person or a team. Matched after
#: the punctuation is escaped, so a name character may come escaped (``@\_x``).
_REFERENCE = re.compile(r"([@#])(?=\\?[A-Za-z0-9_])")
#: A zero-width space, as an entity: keeps ``@name`` readable but no longer a mention.
_ZERO_WIDTH = "&#8203;"

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def safe_text(text: str) -> str:
    """``text`` on one line, with every control, escape and workflow command made visible."""
    if text.isprintable() and _LEGACY_COMMAND not in text and not text.lstrip(" ").startswith(":"):
        return text  # the common case: nothing to do
    escaped = "".join(ch if ch.isprintable() else _escape(ch) for ch in text)
    escaped = escaped.replace(_LEGACY_COMMAND, "##\\x5b")
    if escaped.lstrip(" ").startswith("::"):
        escaped = _COMMAND_START.sub(lambda m: m.group(1) + "\\x3a", escaped, count=1)
    return escaped


def safe_json(document: object) -> str:
    """``document`` as indented JSON text (sorted keys, final newline) safe in a CI log.

    Outside strings JSON has no ``#``, so ``##[`` only occurs inside one, where ``\\u005b``
    reads back as the same ``[``: the data is unchanged. orjson writes it: ``json.dumps`` with
    ``indent`` runs in pure Python, and sorting the keys first in Python cost about as much,
    0.14 s for the plan of 10k models against 4 ms (issue 11). The text is the same but for
    how some floats are written (the shortest form: ``1e-7`` for ``1e-07``, ``0.00001`` for
    ``1e-05``) and NaN or an infinity, which JSON has no word for (``null``, not ``NaN``).
    What orjson does not take as it is (a non-string key, an integer beyond 64 bits, a string
    Rust cannot hold such as a lone surrogate from a ``\\ud800`` in an answer, a subclass, a
    date, a dataclass, a set) goes to ``json.dumps``, which writes or refuses it as it always
    has; a plain ``Enum`` or a ``UUID``, which ``json.dumps`` refuses, orjson writes (the
    documents are model dumps in JSON mode: they hold neither).
    """
    fast = sorted_orjson(document, indent=True)
    # json.dumps's errors are its own: nothing of orjson's in their context
    text = fast.decode() if fast is not None else json.dumps(document, sort_keys=True, indent=2)
    if not text.isascii() or _DEL in text:  # only in strings: JSON itself is ASCII
        text = _NOT_PLAIN_ASCII.sub(_json_escape, text)
    return text.replace(_LEGACY_COMMAND, "##\\u005b") + "\n"


#: What ``ensure_ascii`` escapes that orjson leaves: DEL and every non-ASCII character.
_NOT_PLAIN_ASCII = re.compile(r"[^\x00-\x7e]")
_DEL = "\x7f"


def _json_escape(match: re.Match[str]) -> str:
    """A character as JSON escapes (two, a surrogate pair, beyond the basic plane)."""
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def markdown_text(text: str) -> str:
    """``text`` safe as inline markdown: in a table cell, a list item or a paragraph.

    On top of :func:`safe_text`: HTML (comments, tags, entities) shows literally, markdown
    punctuation is backslash-escaped (including ``|``, which would end a table cell), and
    ``@name`` or ``#123`` no longer notify anyone or link an issue.
    """
    escaped = safe_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = _MARKDOWN_PUNCTUATION.sub(r"\\\1", escaped)
    return _REFERENCE.sub(lambda m: m.group(1) + _ZERO_WIDTH, escaped)


def markdown_code(text: str) -> str:
    """``text`` as an inline code span that also sits safely in a table cell.

    Nothing inside a code span is markdown or HTML, and GitHub never turns it into a mention;
    only backticks (the span needs a longer fence) and ``|`` (GFM splits table cells before
    it parses code) need care.
    """
    content = safe_text(text).replace("|", "\\|")
    if not content:
        return ""  # there is no empty code span; nothing to show
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    ticks = "`" * (longest + 1)
    # CommonMark strips one space from each end when both have one (unless all are spaces).
    edges = content.startswith(("`", " ")) or content.endswith(("`", " "))
    pad = " " if edges and content.strip(" ") else ""
    return f"{ticks}{pad}{content}{pad}{ticks}"


def code_fence(body: str) -> str:
    """A backtick fence longer than any run of backticks in ``body`` (at least three)."""
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    return "`" * max(3, longest + 1)


class SafeLogFormatter(logging.Formatter):
    """A log formatter whose lines carry no raw control character and no workflow command.

    The message is one line; a traceback (``--debug``) keeps its lines, each made safe.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The formatted line, neutralised."""
        return safe_text(super().formatMessage(record))

    def formatException(self, ei: _ExcInfo) -> str:
        """Each line of the traceback, neutralised."""
        return "\n".join(safe_text(line) for line in super().formatException(ei).splitlines())

    def formatStack(self, stack_info: str) -> str:
        """Each line of the stack, neutralised."""
        return "\n".join(safe_text(line) for line in stack_info.splitlines())


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    point = ord(ch)
    if point <= 0xFF:
        return f"\\x{point:02x}"
    if point <= 0xFFFF:
        return f"\\u{point:04x}"
    return f"\\U{point:08x}"
