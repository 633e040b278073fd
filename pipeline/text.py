"""Text from the API made safe for a terminal: control characters and bidi overrides shown, never obeyed.

Policy names, repository names and error messages come from the service. Printed raw, an ESC sequence can clear
the screen or retitle the terminal, a newline can forge a log line, and a bidi override can reorder what is
read. Every human output goes through :func:`terminal_safe`; JSON outputs keep the exact text (see :func:`dumps`).
"""

from __future__ import annotations

import json
from typing import Any

# C0 controls, DEL, C1 controls, and the bidi embeddings/overrides (U+202A-U+202E) and isolates (U+2066-U+2069)
UNSAFE = frozenset([*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)])

_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
# each unsafe character as the escape Python would write for it: \n, \x1b, \x9b, \u202e
_VISIBLE = {c: _NAMED.get(c, f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in UNSAFE}
# json.dumps escapes C0 in strings itself (and writes newlines between values when indenting): the rest of
# UNSAFE gets the standard \uXXXX escape, which decodes back to the very same character
_JSON = {c: f"\\u{c:04x}" for c in UNSAFE if c >= 0x7F}


def terminal_safe(text: str) -> str:
    """``text`` as one inert terminal line: every unsafe character escaped visibly, everything else as is."""
    return text.translate(_VISIBLE)


def safe_block(text: str, indent: str = "  ") -> str:
    """A multi-line block (a traceback) kept line by line, each line made safe and indented, so that no line of
    it can pass for a log line or an ``error:`` line of its own."""
    return "\n".join(indent + terminal_safe(line) for line in text.rstrip("\n").split("\n"))


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` with non-ASCII text kept readable (CJK, emoji) but every unsafe character escaped as
    ``\\uXXXX``: the JSON decodes to the exact original, and printed raw it controls nothing."""
    # outside its strings JSON holds none of these characters, so escaping them wherever they are stays valid
    return json.dumps(value, ensure_ascii=False, **kwargs).translate(_JSON)
