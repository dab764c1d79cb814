"""The one exception type users see: its message is printed as a single line and the CLI exits non-zero;
and ``warn``, the one line of a warning."""
import sys


class SuiteError(Exception):
    """A user-facing error: bad input, bad config, missing file. Say what, where and why in one line."""


def warn(message: str) -> None:
    print(f"suite: warning: {message}", file=sys.stderr)
