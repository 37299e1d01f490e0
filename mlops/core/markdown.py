"""Escaping untrusted text for the Markdown reports the Kubeflow UI renders.

Gate reports quote things nobody here wrote: file names and messages from a
data scientist's repository, type names read from a model file, requirement
lines. The Kubeflow UI renders a ``Markdown`` artifact and lets raw HTML
through, so such text must come out as literal characters: no tag, no link, no
emphasis, no table cell break, no line break that starts a heading or list.
"""

from __future__ import annotations

import re

__all__ = ["escape_markdown"]

#: Characters that become HTML entities: they could open a tag or an entity.
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}

#: ASCII punctuation with a Markdown meaning anywhere in a line (emphasis, code,
#: links, images, tables, strike-through, headings, autolinks, escapes), written
#: with a backslash: CommonMark (and markdown-to-jsx) show any escaped ASCII
#: punctuation literally.
_BACKSLASHED = frozenset("\\`*_[](){}|!~#:\"'")

#: The start of a GitHub-flavoured bare "www." autolink (``http://`` ones are broken
#: by the escaped colon).
_WWW = re.compile(r"(?i)\b(www)\.")

#: What makes a list, a heading underline or a rule when it opens a line.
_LINE_START = re.compile(r"^(\s*)([-+=]|\d+(?=\.))")


def escape_markdown(value: object) -> str:
    """Renders ``value`` as Markdown text that displays literally, on one line.

    Args:
        value: Any value; ``str()`` of it is escaped.

    Returns:
        The text with HTML-significant characters as entities, Markdown
        punctuation backslash-escaped and line breaks (and other control
        characters) replaced by spaces, so it is safe inside a paragraph or a
        table cell.
    """
    text = "".join(" " if (ord(ch) < 32 or ord(ch) == 127) else ch for ch in str(value))
    out = []
    for ch in text:
        if ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif ch in _BACKSLASHED:
            out.append("\\" + ch)
        else:
            out.append(ch)
    escaped = _WWW.sub(r"\1\\.", "".join(out))
    match = _LINE_START.match(escaped)
    if match:
        # "- x", "+ x", "=" open a list or underline a heading; "1." opens an ordered
        # list ("1)" needs nothing more: the parenthesis is already escaped).
        marker = match.group(2)
        end = match.end()
        if marker.isdigit():
            escaped = escaped[:end] + "\\" + escaped[end:]
        else:
            escaped = escaped[: match.start(2)] + "\\" + escaped[match.start(2) :]
    return escaped
