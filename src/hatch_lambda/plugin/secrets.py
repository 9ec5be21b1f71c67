"""Files that look like secrets are left out of function zips unless asked for.

A function's code is selected the way hatch's wheel target selects files, so
a stray ``.env``, a private key or a ``.git`` directory under a package would
ship to Lambda. Names matching :data:`SECRET_PATTERNS` (gitignore-style, on the
path inside the zip, ignoring case: ``SERVER.PEM`` is ``server.pem``) are
dropped and reported; ``include-secrets`` lists the files (gitignore-style
patterns too, ignoring case the same way) to ship on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pathspec import GitIgnoreSpec

from hatch_lambda.packs.deflate import Entry

#: Lower case: names are matched folded to lower case. A pattern with a "/" inside is anchored
#: where it starts, as in .gitignore, so those begin with "**/" to match in any directory.
SECRET_PATTERNS = (
    ".env",
    ".env.*",
    ".envrc",
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
    ".git-credentials",
    ".pgpass",
    ".htpasswd",
    ".aws/",
    ".ssh/",
    ".gnupg/",
    "**/.docker/config.json",
    "**/.kube/config",
    "*.tfstate",
    "*.tfstate.*",
    "*.tfvars",
    "*.tfvars.json",
)


@dataclass(frozen=True)
class SecretFilter:
    kept: list[Entry]
    left_out: list[str]  # names inside the zip


def filter_secrets(entries: Iterable[Entry], include: Iterable[str] = ()) -> SecretFilter:
    """Drop entries whose path looks like a secret, except those ``include`` matches (both ignoring case)."""
    secret = GitIgnoreSpec.from_lines(SECRET_PATTERNS)
    allowed = GitIgnoreSpec.from_lines([pattern.casefold() for pattern in include])
    kept, left_out = [], []
    for entry in entries:
        folded = entry.name.casefold()
        if secret.match_file(folded) and not allowed.match_file(folded):
            left_out.append(entry.name)
        else:
            kept.append(entry)
    return SecretFilter(kept, sorted(left_out))
