"""manifest.json, typed: written and read back by attribute; an older build's manifest still reads."""

from __future__ import annotations

import json

from hatch_lambda.assemble.manifest import MANIFEST, ArtifactEntry, FunctionEntry, Manifest, Section
from hatch_lambda.packs.contents import DistributionContents

#: A section as hatch-lambda 0.1 wrote it: no functions, no layer entry.
OLD = {
    "python": "3.11", "runtime": "python3.11", "arch": "x86_64", "layout": "python",
    "lock": {"file": "uv.lock", "sha256": "ab" * 32}, "extras": [], "groups": [], "excluded": [],
    "distributions": [{"name": "six", "version": "1.17.0", "source": "registry", "file": "six-1.17.0-py3-none-any.whl"}],
    "artifacts": [{"file": "layer.zip", "kind": "layer", "sha256": "cd" * 32, "sha256_base64": "x", "zipped_bytes": 10,
                   "unzipped_bytes": 20, "entries": 3}],
    "stripped": {"files": 1, "bytes": 5, "by_rule": {"dist-info": 5}},
    "contents": {"six": {"version": "1.17.0", "top_level": ["six.py"], "modules": ["six"], "stripped_files": 1,
                         "stripped_bytes": 5}},
    "audit": {"mode": "error", "findings": []},
}


def test_an_older_manifest_reads_with_defaults(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({"format": 1, "targets": {"lambda-layer": OLD, "lambda-fat": 3}}))
    document = Manifest.read(tmp_path)
    assert list(document.sections) == ["lambda-layer"]  # a section that is not a table is left out
    section = document.sections["lambda-layer"]
    assert section.python == "3.11" and section.lock.sha256 == "ab" * 32
    assert section.artifact("layer.zip") == ArtifactEntry("layer.zip", "layer", "cd" * 32, "x", 10, 20, 3)
    assert section.contents["six"] == DistributionContents("1.17.0", ["six.py"], ["six"], 1, 5)
    assert section.functions == {} and section.layer is None
    assert section.modules() == {"six"}


def test_a_section_round_trips(tmp_path):
    section = Section(python="3.12", runtime="python3.12",
                      functions={"api": FunctionEntry("api.zip", "h", "app.handler", "python3.12", ["arm64"])},
                      contents={"six": DistributionContents("1.17.0", ["six.py"], ["six"])})
    Manifest({"lambda-layer": section}).write(tmp_path / MANIFEST)
    assert Manifest.read(tmp_path).sections["lambda-layer"] == section
    data = json.loads((tmp_path / MANIFEST).read_text())
    assert data["format"] == 1 and data["targets"]["lambda-layer"]["functions"]["api"]["handler"] == "app.handler"


def test_unreadable_manifests_are_empty(tmp_path):
    assert Manifest.read(tmp_path).sections == {}
    (tmp_path / MANIFEST).write_text("{not json")
    assert Manifest.read(tmp_path).sections == {}
    (tmp_path / MANIFEST).write_text('["a list"]')
    assert Manifest.read(tmp_path).sections == {}
