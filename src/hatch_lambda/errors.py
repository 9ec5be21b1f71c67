"""The one error type hatch-lambda raises for problems the user can fix."""

from __future__ import annotations


class LambdaBuildError(Exception):
    """A problem with the user's input, stated with what to do about it.

    ``str(error)`` is the whole message: what went wrong (naming the file or
    package) and, on a second line, the fix.
    """

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}\n  fix: {fix}")
