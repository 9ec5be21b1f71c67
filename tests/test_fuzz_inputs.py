"""Garbled input: the lock reader and the configuration fed random and mutated values.

The real fixture locks are mutated (a value replaced by one of another type,
a key dropped, text cut or spliced) and random tables are given to the
configuration. The answer is either a correct one or a :class:`LambdaBuildError`
- never another exception. Example counts are kept small enough for a run of
seconds; hypothesis keeps the failing examples it finds in its database.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hatch_lambda.config.options import _KEYS, FAT, LAYER, LambdaConfig, load_config
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.files import cached_path
from hatch_lambda.lockfile.file import read_lock
from hatch_lambda.lockfile.resolve import Resolution, resolve
from hatch_lambda.runtime.target import Target

from helpers.projects import copy_fixture, fixture_path

FIXTURES = ("native-app", "extras-app", "workspace-app", "sources-app", "forked-app", "markers-app")
TARGET = Target("3.11", "x86_64")
SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
scalars = st.one_of(text, st.integers(-5, 10**6), st.booleans(), st.floats(allow_nan=False, allow_infinity=False))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=6,
)


# --------------------------------------------------------------------------
# the lock


@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("fuzz")
    return {name: copy_fixture(name, base) for name in FIXTURES}


def _paths(node, trail=()):
    """Every (container, key) in a parsed TOML document."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield node, key
        yield from _paths(child, (*trail, key))


@st.composite
def mutated_lock(draw) -> tuple[str, str]:
    name = draw(st.sampled_from(FIXTURES))
    data = tomllib.loads((fixture_path(name) / "uv.lock").read_text())
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        places = list(_paths(data))
        container, key = draw(st.sampled_from(places))
        action = draw(st.sampled_from(["replace", "delete", "swap"]))
        if action == "delete" and isinstance(container, dict):
            del container[key]
        elif action == "swap":
            other, other_key = draw(st.sampled_from(places))
            container[key] = copy.deepcopy(other[other_key])
        else:
            container[key] = draw(values)
    return name, tomli_w.dumps(data)


@st.composite
def spliced_lock(draw) -> tuple[str, str]:
    name = draw(st.sampled_from(FIXTURES))
    original = (fixture_path(name) / "uv.lock").read_text()
    start = draw(st.integers(0, len(original)))
    end = draw(st.integers(start, min(len(original), start + 200)))
    junk = draw(st.one_of(st.just(""), text, st.sampled_from(['"', "]", "[[package]]\n", "= 1\n", "\n", "{", "\\"])))
    return name, original[:start] + junk + original[end:]


def check_lock(projects: dict[str, Path], name: str, lock_text: str) -> None:
    project = projects[name]
    (project / "uv.lock").write_text(lock_text, encoding="utf-8")
    try:
        read_lock(project / "uv.lock", TARGET)
        result = resolve(project, TARGET)
    except LambdaBuildError as exc:
        assert exc.problem, "an error without a message"
        return
    assert isinstance(result, Resolution)
    names = result.names()
    assert names == sorted(names) and len(set(names)) == len(names)
    for dist in result.distributions:
        assert dist.is_local or dist.source_kind == "git" or dist.file is not None, dist


@SETTINGS
@given(mutated_lock())
def test_mutated_lock_values(projects, case):
    check_lock(projects, *case)


@SETTINGS
@given(spliced_lock())
def test_spliced_lock_text(projects, case):
    check_lock(projects, *case)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["version", "requires-python", "package", "manifest", "conflicts", "x"]),
                       values, max_size=5))
def test_random_lock_tables(projects, table):
    check_lock(projects, "native-app", tomli_w.dumps(table))


@pytest.mark.parametrize("raw", [b"\xff\xfe version = 1", b"version = 1\npackage = [1, 2]\n", b"\x00"])
def test_undecodable_and_misshapen_locks(projects, raw):
    (projects["native-app"] / "uv.lock").write_bytes(raw)
    with pytest.raises(LambdaBuildError) as raised:
        resolve(projects["native-app"], TARGET)
    assert "uv.lock" in raised.value.problem
    assert "uv lock" in raised.value.fix


def test_misshapen_lock_names_the_place(projects):
    data = tomllib.loads((fixture_path("native-app") / "uv.lock").read_text())
    index = next(i for i, package in enumerate(data["package"]) if package.get("wheels"))
    data["package"][index]["wheels"][0]["url"] = 3
    (projects["native-app"] / "uv.lock").write_text(tomli_w.dumps(data))
    with pytest.raises(LambdaBuildError) as raised:
        resolve(projects["native-app"], TARGET)
    assert f"uv.lock: package[{index}].wheels[0].url must be a string, not 3" in raised.value.problem
    assert raised.value.fix == "the lock is damaged; regenerate it with `uv lock` (and resolve any merge conflict)"


# --------------------------------------------------------------------------
# the lock's strings that become paths: hashes, file names, URLs

#: Pieces of hostile strings: separators, dots, NUL, percent-encodings (once and twice), absolute paths.
PIECES = ["/", "\\", "..", ".", "\0", "%2F", "%2f", "%5C", "%5c", "%2e%2e", "%2E", "%252F", "%00", "%", "/etc/passwd",
          "C:\\Windows", "~", "victim", "-1.0-py3-none-any.whl", ".whl", ".tar.gz", "sha256:", "a" * 64, "0" * 63,
          "//[", "]", "?", "#", "\n", "\u2100", "\uff0f"]  # a bad IPv6 host, a host NFKC makes hold a separator
hostile = st.lists(st.one_of(st.sampled_from(PIECES), text), min_size=1, max_size=6).map("".join)
#: Where uv writes a file's hash, file name and URL (a wheel's or an sdist's, or a url source's).
LOCATED = re.compile(r'(hash|filename|url) = "([^"]*)"')


@st.composite
def lock_with_hostile_string(draw) -> tuple[str, str]:
    name = draw(st.sampled_from(FIXTURES))
    original = (fixture_path(name) / "uv.lock").read_text()
    places = list(LOCATED.finditer(original))
    place = draw(st.sampled_from(places))
    key, value = place.group(1), draw(hostile)
    if key == "url" and draw(st.booleans()):
        value = f"https://files.example/packages/{value}"
    elif key == "hash" and draw(st.booleans()):
        value = "sha256:" + value
    return name, original[: place.start(2) - 1] + toml_string(value) + original[place.end(2) + 1:]


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string: quotes, backslashes and control characters (NUL, DEL) escaped."""
    escaped = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else "\\" + c if c in '"\\' else c
                      for c in value)
    return f'"{escaped}"'


@SETTINGS
@given(lock_with_hostile_string())
def test_hostile_paths_names_and_hashes_in_a_lock(projects, tmp_path_factory, case):
    """One error naming the lock, or a resolution whose every file is cached inside the cache."""
    name, lock_text = case
    project = projects[name]
    (project / "uv.lock").write_text(lock_text, encoding="utf-8")
    try:
        result = resolve(project, TARGET)
    except LambdaBuildError as exc:
        assert "uv.lock" in exc.problem, exc.problem
        return
    cache = tmp_path_factory.getbasetemp() / "fuzz-cache"
    for dist in result.distributions:
        file = dist.file
        if file is None or file.url is None or not file.sha256:
            continue
        path = cached_path(file, cache)  # an accepted lock never names a place outside (this would raise)
        assert path.parent == cache / "files" / file.sha256[:2] / file.sha256, path
        assert path.resolve().is_relative_to(cache.resolve()), path


# --------------------------------------------------------------------------
# the configuration

VALID = {
    "python": "3.12",
    "arch": "arm64",
    "installer": "wheels",
    "extras": ["yaml"],
    "strip-patterns": ["*.pyi"],
    "functions": {"api": {"packages": ["src/app"]}},
    "max-unzipped-mb": 200,
    "include-secrets": ["app/key.pem"],
}


def check_config(kind: str, own: dict, layer: dict, requires_python) -> None:
    try:
        config = load_config(kind, own, layer, project_name="app", requires_python=requires_python)
    except LambdaBuildError as exc:
        assert exc.problem
        return
    assert isinstance(config, LambdaConfig)
    assert config.kind == kind and config.functions


@SETTINGS
@given(
    st.sampled_from([LAYER, FAT]),
    st.dictionaries(st.sampled_from([*_KEYS, "directory", "unknown-key"]), values, max_size=4),
    st.dictionaries(st.sampled_from(_KEYS), values, max_size=3),
    st.one_of(st.none(), text, st.sampled_from([">=3.11", ">=3.12,<3.13", "==2.7", ">=3.99"])),
)
def test_random_config_tables(kind, own, layer, requires_python):
    check_config(kind, own, layer, requires_python)


@SETTINGS
@given(st.sampled_from(sorted(VALID)), values, st.sampled_from([LAYER, FAT]))
def test_valid_config_with_one_value_garbled(key, value, kind):
    own = {**VALID, key: value}
    check_config(kind, own if kind == LAYER else {}, own if kind == FAT else {}, ">=3.11")


@SETTINGS
@given(st.dictionaries(text, values, max_size=3), st.sampled_from([LAYER, FAT]))
def test_garbled_functions_table(functions, kind):
    check_config(kind, {"functions": functions}, {}, ">=3.11")
