"""Exceptions the CLI turns into one clear message (no traceback) and a non-zero exit."""


class HarnessError(Exception):
    """Base class for errors that carry a user-facing message."""


class ConfigError(HarnessError):
    """An invalid config file, unknown key, or bad command-line value."""


class DataError(HarnessError):
    """Missing, corrupt or malformed task data."""


#: The longest run of characters without a space that a message or log line prints whole.
LONGEST_WORD = 200


def printable(text: object, longest: int = LONGEST_WORD) -> str:
    """``text`` with every run of more than ``longest`` non-space characters cut in its middle: a message
    that names a value read from a file (a 900 KB model name, a path built from it) stays a line.

    >>> printable("no model 'abc'")
    "no model 'abc'"
    >>> printable("File name too long: " + "x" * 10_000, longest=20)
    'File name too long: xxxxxxxxxx...[9,980 more]...xxxxxxxxxx'
    """
    import re

    text = str(text)
    if len(text) <= longest:
        return text
    half = longest // 2

    def cut(m: "re.Match[str]") -> str:
        w = m.group(0)
        return f"{w[:half]}...[{len(w) - 2 * half:,} more]...{w[-half:]}"

    return re.sub(r"\S{%d,}" % (longest + 1), cut, text)


class PrintableFilter:
    """A logging filter that passes every record with its message made :func:`printable` (installed on the
    command line's log handler)."""

    def filter(self, record) -> bool:
        message = record.getMessage()
        short = printable(message)
        if short != message:
            record.msg, record.args = short, None
        return True
