"""Library words into command-line words: a hint written for Python callers (``resume=True``,
``batch_sizes=(1, 8)``, ``leave class_map unset``) says the flag instead when the running command
has that option (``--resume``, ``--batch-sizes 1,8``, ``leave --class-map unset``).

The library names its keyword arguments, and each CLI option's parameter name is the keyword
argument it fills, so one rewrite here serves every command and every message.
"""

from __future__ import annotations

import re
from typing import Any

#: ``name=value``: True/False, a tuple or list, a quoted string, or a bare word/number
_ASSIGNMENT = re.compile(
    r"\b(?P<name>[a-z][a-z0-9_]*)=(?P<value>True|False|None|\([^)]*\)|\[[^\]]*\]|'[^']*'|\"[^\"]*\"|[^\s,;)]+)"
)
#: a bare keyword argument name: only snake_case words (with an underscore) are unmistakably Python
#: (not inside a quoted value, a path or a dotted name: ``'/data/class_map.csv'`` stays as it is)
_BARE = re.compile(r"(?<![\w.'\"/\\-])(?P<name>[a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?![\w'\"(=/\\]|\.\w)")


def _options(command: Any) -> dict[str, Any]:
    return {p.name: p for p in getattr(command, "params", []) if getattr(p, "param_type_name", "") == "option"}


def _long(names: list[str]) -> str:
    longs = [n for n in names if n.startswith("--")]
    return (longs or names)[0]


def _as_flag(option: Any, value: str) -> str:
    flag = _long(list(option.opts))
    if getattr(option, "is_flag", False) or value in ("True", "False"):
        if value == "False":
            off = list(getattr(option, "secondary_opts", []))
            return _long(off) if off else f"no {flag}"
        return flag
    if value == "None":
        return f"no {flag}"
    if value[:1] in "([":
        value = ",".join(v.strip().strip("'\"") for v in value[1:-1].split(",") if v.strip())
    elif value[:1] in "'\"":
        value = value[1:-1]
    return f"{flag} {value}"


def cli_words(text: str, command: Any) -> str:
    """``text`` with the keyword arguments of ``command``'s options written as its flags.

    Args:
        text: a library message that names keyword arguments.
        command: the running click command whose options give the flags (None: ``text`` as it is).
    """
    options = _options(command)
    if not options:
        return text

    def assignment(match: re.Match[str]) -> str:
        option = options.get(match["name"])
        return _as_flag(option, match["value"]) if option is not None else match[0]

    def bare(match: re.Match[str]) -> str:
        option = options.get(match["name"])
        return _long(list(option.opts)) if option is not None else match[0]

    return _BARE.sub(bare, _ASSIGNMENT.sub(assignment, text))
