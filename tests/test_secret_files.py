"""Function code that would ship secrets: left out by default, reported, included on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

from hatch_lambda.config.options import load_config
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.packs.deflate import Entry
from hatch_lambda.plugin.secrets import filter_secrets

from helpers.builds import hatchling_build, zip_files
from helpers.projects import FAT, LAYER, configure, copy_fixture

SECRETS = [
    "native_app/.env",
    "native_app/.env.production",
    "native_app/certs/server.pem",
    "native_app/deploy.key",
    "native_app/id_rsa",
    "native_app/id_ed25519.pub",
    "native_app/vendored/.git/config",
    "native_app/.ENV",
    "native_app/certs/SERVER.PEM",
    "native_app/ops/.kube/config",
    "native_app/prod.auto.tfvars",
]


@pytest.mark.network
def test_secrets_are_left_out_of_function_zips_and_reported(tmp_path, cache):
    project = copy_fixture("native-app", tmp_path)
    for name in SECRETS:
        path = project / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("SECRET=1\n")
    (project / "src/native_app/settings.env.example").write_text("SECRET=\n")  # not a secret: kept
    build = hatchling_build(project, LAYER, FAT, cache=cache)
    for archive in ("native-app.zip", "native-app-fat.zip"):
        files = zip_files(build.out(archive))
        assert "native_app/handler.py" in files
        assert "native_app/settings.env.example" in files
        leaked = [name for name in SECRETS if name in files]
        assert leaked == [], f"{archive} ships {leaked}"
    for name in SECRETS[:6]:
        assert f"left {name} out of function 'native-app': it looks like a secret" in build.output
    assert "(list it in include-secrets to ship it)" in build.output

    configure(project, include_secrets=["native_app/certs/server.pem"])
    build = hatchling_build(project, LAYER, cache=cache)
    files = zip_files(build.out("native-app.zip"))
    assert "native_app/certs/server.pem" in files
    assert "native_app/.env" not in files and "native_app/id_rsa" not in files
    assert "left native_app/certs/server.pem out" not in build.output


def test_filter_secrets_patterns(tmp_path):
    names = ["app/.env", "app/.env.local", "app/key.pem", "app/tls.key", "app/id_rsa", "app/.git/HEAD",
             "app/.aws/credentials", "app/.netrc", "app/env.py", "app/keys.py", "app/pem/readme.txt",
             "terraform.tfstate"]
    picked = filter_secrets([Entry(name, tmp_path / name) for name in names], include=["app/tls.key"])
    assert [e.name for e in picked.kept] == ["app/tls.key", "app/env.py", "app/keys.py", "app/pem/readme.txt"]
    assert picked.left_out == sorted(set(names) - {e.name for e in picked.kept})


#: Each looks like a secret, in any directory and whatever the case of its letters.
MORE_SECRETS = [
    ".ENV", "app/.Env.Local", "app/certs/SERVER.PEM", "app/TLS.Key", "app/ID_RSA", "app/.GIT/config",
    ".envrc", "app/.envrc", ".git-credentials", "app/.pgpass", "web/.htpasswd", "app/.HTPASSWD",
    ".docker/config.json", "app/home/.docker/config.json", "app/.Docker/Config.json",
    ".kube/config", "ops/.kube/config", "app/.gnupg/pubring.kbx", ".GnuPG/private-keys-v1.d/x.key",
    "terraform.tfvars", "infra/prod.auto.tfvars", "infra/PROD.TFVARS", "infra/vars.tfvars.json",
]
#: Near misses: names a project ships.
NOT_SECRETS = [
    "app/envrc.py", "app/env.py", "app/docker/config.json", "app/.docker/daemon.json", "app/kube/config",
    "app/.kube/config.py", "app/gnupg.py", "infra/main.tf", "infra/variables.tf", "app/tfvars.py",
    "app/pem.py", "app/git_credentials.py", "app/pgpass.txt",
]


@pytest.mark.parametrize("name", MORE_SECRETS)
def test_more_secret_names_are_left_out_whatever_their_case(tmp_path, name):
    picked = filter_secrets([Entry(name, tmp_path / "x"), Entry("app/handler.py", tmp_path / "y")])
    assert picked.left_out == [name]
    assert [e.name for e in picked.kept] == ["app/handler.py"]


def test_near_misses_are_kept():
    picked = filter_secrets([Entry(name, Path(name)) for name in NOT_SECRETS])
    assert picked.left_out == []


def test_include_secrets_ignores_case_too(tmp_path):
    names = ["app/certs/SERVER.PEM", "app/certs/other.pem", "app/.ENV"]
    picked = filter_secrets([Entry(name, tmp_path / name) for name in names], include=["app/certs/server.pem"])
    assert [e.name for e in picked.kept] == ["app/certs/SERVER.PEM"]
    assert picked.left_out == ["app/.ENV", "app/certs/other.pem"]


def test_include_secrets_must_be_a_list_of_strings():
    with pytest.raises(LambdaBuildError) as raised:
        load_config(LAYER, {"include-secrets": "key.pem"}, {}, project_name="app", requires_python=">=3.11")
    assert "include-secrets in [tool.hatch.build.targets.lambda-layer] of pyproject.toml must be a list of strings" \
        in str(raised.value)
