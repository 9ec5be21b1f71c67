"""Files that look like secrets are left out of function zips unless asked for.

A function's code is selected the way hatch's wheel target selects files, so
a stray ``.env``, a private key or a ``.git`` directory under a package would
ship to Lambda. Names matching :data:`SECRET_PATTERNS` (gitignore-style, on the
path inside the zip) are dropped and reported; ``include-secrets`` lists the
files (gitignore-style patterns too) to ship on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pathspec import GitIgnoreSpec

from hatch_lambda.packs.deflate import Entry

SECRET_PATTERNS = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".git/",
    ".hg/",
    ".svn/",
    ".netrc",
    ".pypirc",
    ".npmrc",
    ".aws/",
    ".ssh/",
    "*.tfstate",
    "*.tfstate.*",
)


@dataclass(frozen=True)
class SecretFilter:
    kept: list[Entry]
    left_out: list[str]  # names inside the zip


def filter_secrets(entries: Iterable[Entry], include: Iterable[str] = ()) -> SecretFilter:
    """Drop entries whose path looks like a secret, except those ``include`` matches."""
    secret = GitIgnoreSpec.from_lines(SECRET_PATTERNS)
    allowed = GitIgnoreSpec.from_lines(list(include))
    kept, left_out = [], []
    for entry in entries:
        if secret.match_file(entry.name) and not allowed.match_file(entry.name):
            left_out.append(entry.name)
        else:
            kept.append(entry)
    return SecretFilter(kept, sorted(left_out))
