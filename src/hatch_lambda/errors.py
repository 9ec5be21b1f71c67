"""The one error type hatch-lambda raises for problems the user can fix, and URLs shown without passwords."""

from __future__ import annotations

import re

#: ``scheme://user:password@`` or ``scheme://token@``: the secret of a URL, wherever it is in a text.
_USERINFO = re.compile(r"(?<=://)([^\s/@:]*)(:[^\s/@]*)?@")


def _hide(match: re.Match[str]) -> str:
    user, password = match.group(1), match.group(2)
    if password is not None:
        return f"{user}:****@"
    return match.group(0) if user in ("", "git") else "****@"  # a lone user name is often a token


def redact(text: str) -> str:
    """``text`` with the secret of every URL in it replaced by ``****`` (``https://user:****@host/``)."""
    return _USERINFO.sub(_hide, text)


class LambdaBuildError(Exception):
    """A problem with the user's input, stated with what to do about it.

    ``str(error)`` is the whole message: what went wrong (naming the file or
    package) and, on a second line, the fix. A password in a URL is never shown.
    """

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = redact(problem)
        self.fix = None if fix is None else redact(fix)
        super().__init__(self.problem if not self.fix else f"{self.problem}\n  fix: {self.fix}")
