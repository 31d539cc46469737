"""Parsing helpers for CLI values (lists of ints, class-name files)."""

from __future__ import annotations

from pathlib import Path

from toolkit.errors import InvalidArgumentError

#: a valid value for each list flag, for hints (a batch size of 0 is refused: no '0-6' there)
LIST_EXAMPLES = {
    "--batch-sizes": "1,8", "--preferred-batch-sizes": "4,8", "--hidden": "512,256", "--digits-subset": "7-9",
}  # fmt: skip


#: the most numbers one 'a-b' range may expand to
MAX_RANGE = 1_000_000


def int_list(text: str | None, *, flag: str) -> list[int] | None:
    """'3,1,7' -> [3, 1, 7]; ranges 'a-b' expand inclusively. Names the bad item.

    Args:
        text: the flag's value (None: None).
        flag: the flag's name, for the error message and its example.
    """
    if text is None:
        return None
    example = f"e.g. {flag} {LIST_EXAMPLES[flag]}" if flag in LIST_EXAMPLES else f"e.g. {flag} 3,1,7 or {flag} 0-6"
    items = [t.strip() for t in text.split(",")]
    if not any(items):
        raise InvalidArgumentError(f"{flag} is empty", hint=example)
    out: list[int] = []
    for item in items:
        lo, sep, hi = item.partition("-")
        try:
            span = range(int(lo), int(hi) + 1) if sep and lo else range(int(item), int(item) + 1)
        except ValueError as exc:
            raise InvalidArgumentError(f"{flag}: '{item}' is not an integer", hint=example) from exc
        count = max(0, span.stop - span.start)  # len() overflows past 2**63
        if count > MAX_RANGE:  # '0-99999999999' would take all memory first
            raise InvalidArgumentError(
                f"{flag}: range '{item}' holds {count} numbers (at most {MAX_RANGE})", hint=example
            )
        out.extend(span)
    return out


def class_names_file(path: Path | None) -> list[str] | None:
    """One class name per line (blank lines ignored), or a JSON list.

    Args:
        path: the file to read (None: None).
    """
    if path is None:
        return None
    import json

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read class-names file '{path}': {exc}") from exc
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArgumentError(f"'{path}' is not a valid JSON list: {exc}") from exc
        if not isinstance(names, list):
            raise InvalidArgumentError(f"'{path}' must hold a JSON list of names")
        return [str(n) for n in names]
    return [line.strip() for line in text.splitlines() if line.strip()]


def size(text: str | None, *, flag: str) -> tuple[int, int] | None:
    """'224x224' (or '224') -> (224, 224): height and width. Names the flag when it is not.

    Args:
        text: the flag's value, ``HxW`` or one side for both (None: None).
        flag: the flag's name, for the error message.
    """
    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError as exc:
        raise InvalidArgumentError(f"{flag}: '{text}' is not HxW", hint=f"e.g. {flag} 224x224") from exc
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise InvalidArgumentError(f"{flag}: '{text}' is not HxW with positive sides", hint=f"e.g. {flag} 224x224")
    return values[0], values[1]
