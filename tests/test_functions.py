"""Functions as Lambda sees them: handlers proven at build time, hatch's ``sources``, a workspace member each.

- ``cdk-app``: the CDK/SAM layout, handler modules straight in ``src/`` with the
  wheel target's ``packages = ["src"]``; ``sources = ["src"]`` in each function's
  table puts them where Lambda imports from.
- ``services-app``: a serverless monorepo, one workspace member per function
  plus a shared library; each fat zip holds only its own function's closure,
  the layer holds their union.

Every build runs ``python -m hatchling build`` in a subprocess; every handler is
then called from the unzipped artifacts the way Lambda lays them out.
"""

from __future__ import annotations

import pytest

from helpers.builds import assert_failed_cleanly, digests, hatchling_build, manifest, zip_files, zip_sources
from helpers.lambda_run import invoke, invoke_fat, lambda_root
from helpers.projects import FAT, LAYER, configure, copy_fixture, edit_pyproject, target_table

pytestmark = pytest.mark.network

ORDERS = {"order": 7, "greeting": "hello from shared", "six": "1.17.0"}


@pytest.fixture(scope="module")
def cdk(tmp_path_factory, cache):
    project = copy_fixture("cdk-app", tmp_path_factory.mktemp("cdk"))
    return hatchling_build(project, LAYER, cache=cache)


def test_cdk_layout_with_sources_runs_from_the_artifacts(cdk, tmp_path):
    assert zip_sources(cdk.out("orders.zip")) == {"orders.py", "users.py", "shared/__init__.py"}
    assert "__pycache__/orders.cpython-311.pyc" in zip_files(cdk.out("orders.zip"))  # bytecode = "compile"
    root = lambda_root(tmp_path / "orders", "3.11", layer=cdk.out("layer.zip"), function=cdk.out("orders.zip"))
    assert invoke(root, "orders", {"id": 7}).result == ORDERS
    users = lambda_root(tmp_path / "users", "3.11", layer=cdk.out("layer.zip"), function=cdk.out("users.zip"))
    result = invoke(users, "users", environment={"TABLE_NAME": "users"}).result
    assert result == {"table": "users", "greeting": "hello from shared"}
    # The build proved both before putting them in place, with this machine's python3.11.
    assert "handler orders.handler of orders: imported with python3.11" in cdk.output
    assert "handler users.handler of users: imported with python3.11" in cdk.output


def test_the_manifest_says_what_terraform_sam_and_the_cdk_need(cdk):
    section = manifest(cdk.out())["targets"][LAYER]
    artifacts = {a["file"]: a for a in section["artifacts"]}
    orders = section["functions"]["orders"]
    assert orders == {
        "filename": "orders.zip",
        "source_code_hash": artifacts["orders.zip"]["sha256_base64"],
        "handler": "orders.handler",
        "runtime": "python3.11",
        "architectures": ["x86_64"],
        "layers": ["layer.zip"],
        "package": "cdk-app",
        "distributions": ["six"],
        "handler_check": "imported",
    }
    assert section["layer"] == {
        "filename": "layer.zip",
        "source_code_hash": artifacts["layer.zip"]["sha256_base64"],
        "compatible_runtimes": ["python3.11"],
        "compatible_architectures": ["x86_64"],
    }


def test_the_build_summary_shows_each_artifact_beside_its_limits(cdk):
    lines = [line.strip() for line in cdk.output.splitlines() if "zipped of" in line]
    assert [line.split()[0] for line in lines] == ["layer.zip", "orders.zip", "users.zip"]
    for line in lines:
        assert "zipped of 50 MB" in line and "unzipped of 250 MB" in line
    assert lines[1].startswith("orders.zip with layer.zip")


def _functions(project, **changes):
    def change(data):
        functions = target_table(data)["functions"]
        for name, table in changes.items():
            if table is None:
                functions.pop(name)
            else:
                functions[name] = table

    edit_pyproject(project, change)


@pytest.mark.parametrize(
    "orders, needles",
    [
        ({"handler": "orders.handler"},  # no sources: the module is under src/ in the zip
         ['function \'orders\', handler \'orders.handler\': module orders is not where Lambda looks (the root of '
          'orders.zip): it is at src/orders.py in the zip; add sources = ["src"] to functions.orders']),
        ({"handler": "orders.handle", "sources": ["src"]},
         ["function 'orders', handler 'orders.handle': module orders (/var/task/orders.py) has no 'handle'; "
          "it defines greeting, handler, six"]),
        ({"handler": "orders.six", "sources": ["src"]},
         ["function 'orders', handler 'orders.six': orders.six is a module, not a function Lambda can call"]),
        ({"handler": "billing.handler", "sources": ["src"]},
         ["function 'orders', handler 'billing.handler': no module billing in orders.zip or the layer "
          "(the zip's top level holds: orders.py, shared, users.py)"]),
        ({"handler": "src.orders.handler"},
         ["importing src.orders failed: ModuleNotFoundError: No module named 'shared' (at /var/task/src/orders.py:3)",
          'shared is at src/shared/__init__.py in orders.zip, where Lambda does not look: add sources = ["src"] '
          "to functions.orders"]),
    ],
    ids=["no-sources", "no-such-attribute", "not-callable", "no-such-module", "import-error"],
)
def test_a_wrong_handler_is_refused_and_the_previous_artifacts_stay(cdk, tmp_path, cache, orders, needles):
    project = copy_fixture("cdk-app", tmp_path)
    hatchling_build(project, LAYER, cache=cache)
    before = digests(project / "dist" / "lambda")
    _functions(project, orders=orders)
    build = hatchling_build(project, LAYER, cache=cache, check=False)
    assert_failed_cleanly(build, "hatch-lambda: a function's handler cannot be loaded the way Lambda loads it",
                          *needles)
    assert "function 'users'" not in build.output  # the good one is not named
    assert digests(project / "dist" / "lambda") == before


def test_the_handler_import_sees_the_function_environment(tmp_path, cache):
    project = copy_fixture("cdk-app", tmp_path)
    _functions(project, users={"handler": "users.handler", "sources": ["src"]})  # no TABLE_NAME
    build = hatchling_build(project, LAYER, cache=cache, check=False)
    assert_failed_cleanly(build, "function 'users', handler 'users.handler': importing users failed: "
                                 "KeyError: 'TABLE_NAME' (at /var/task/users.py:5)")


def test_a_flat_project_without_a_selection_is_told_what_to_ship(tmp_path, cache):
    project = copy_fixture("cdk-app", tmp_path)
    for module in ("orders.py", "users.py"):
        (project / "src" / module).rename(project / module)

    def flat(data):
        del data["tool"]["hatch"]["build"]["targets"]["wheel"]
        target_table(data)["functions"] = {"orders": {"handler": "orders.handler"}}

    edit_pyproject(project, flat)
    build = hatchling_build(project, LAYER, cache=cache, check=False)
    assert_failed_cleanly(build, "cannot select the code of function 'orders'",
                          "the handler's module is orders.py: set only-include = [\"orders.py\"] for orders")


def test_a_handler_is_checked_statically_when_no_interpreter_can_import_it(tmp_path, cache):
    """arm64 here with no Docker engine: the module file and its name are checked, with a warning."""
    project = copy_fixture("cdk-app", tmp_path)
    configure(project, arch="arm64")
    build = hatchling_build(project, LAYER, cache=cache)
    assert "warning: the handlers were checked statically, not imported" in build.output
    assert "handler orders.handler of orders: checked statically (not imported)" in build.output
    assert manifest(build.out())["targets"][LAYER]["functions"]["orders"]["handler_check"] == "static"
    before = digests(build.out())
    _functions(project, orders={"handler": "orders.handle", "sources": ["src"]})
    failed = hatchling_build(project, LAYER, cache=cache, check=False)
    assert_failed_cleanly(failed, "function 'orders', handler 'orders.handle': orders.py in orders.zip defines no "
                                  "'handle' at its top level")
    _functions(project, orders={"handler": "orders.handler"})
    failed = hatchling_build(project, LAYER, cache=cache, check=False)
    assert_failed_cleanly(failed, "it is at src/orders.py in the zip; add sources = [\"src\"] to functions.orders")
    assert digests(build.out()) == before


# --------------------------------------------------------------------------
# a workspace member per function


@pytest.fixture(scope="module")
def services(tmp_path_factory, cache):
    project = copy_fixture("services-app", tmp_path_factory.mktemp("services"))
    return hatchling_build(project, LAYER, FAT, cache=cache)


API = {"host": "xn--bcher-kva.example", "tag": "api@common-1.0.0", "has_dateutil": False}
WORKER = {"year": 2026, "tag": "worker@common-1.0.0", "has_idna": False}


def test_each_fat_zip_holds_only_its_own_function_closure(services, tmp_path):
    section = manifest(services.out())["targets"][FAT]
    assert section["functions"]["api"]["distributions"] == ["common", "idna"]
    assert section["functions"]["worker"]["distributions"] == ["common", "python-dateutil", "tzdata"]
    api = {name.split("/", 1)[0] for name in zip_files(services.out("api-fat.zip"))}
    worker = {name.split("/", 1)[0] for name in zip_files(services.out("worker-fat.zip"))}
    assert "idna" in api and "dateutil" not in api and "api_svc" in api and "worker_svc" not in api
    assert "dateutil" in worker and "idna" not in worker and "worker_svc" in worker and "api_svc" not in worker
    assert invoke_fat(services.out("api-fat.zip"), tmp_path / "api", "3.12", "api_svc.handler").result == API
    assert invoke_fat(services.out("worker-fat.zip"), tmp_path / "worker", "3.12", "worker_svc.main",
                      attribute="run").result == WORKER


def test_the_layer_holds_the_union_and_each_slim_zip_its_member_code(services, tmp_path):
    section = manifest(services.out())["targets"][LAYER]
    assert [d["name"] for d in section["distributions"]] == ["common", "idna", "python-dateutil", "tzdata"]
    assert zip_sources(services.out("api.zip")) == {"api_svc/__init__.py", "api_svc/handler.py"}
    assert zip_sources(services.out("worker.zip")) == {"worker_svc/__init__.py", "worker_svc/main.py"}
    api = lambda_root(tmp_path / "api", "3.12", layer=services.out("layer.zip"), function=services.out("api.zip"))
    assert invoke(api, "api_svc.handler").result == {**API, "has_dateutil": True}  # the layer has the worker's too
    worker = lambda_root(tmp_path / "worker", "3.12", layer=services.out("layer.zip"),
                         function=services.out("worker.zip"))
    assert invoke(worker, "worker_svc.main", attribute="run").result == {**WORKER, "has_idna": True}
    assert section["functions"]["worker"]["package"] == "worker-svc"


def test_functions_whose_members_need_two_versions_cannot_share_a_layer(tmp_path, cache):
    project = copy_fixture("services-app", tmp_path)
    worker = project / "services" / "worker" / "pyproject.toml"
    worker.write_text(worker.read_text().replace('"python-dateutil>=2.9"', '"python-dateutil>=2.9", "idna<3.8"'))
    api = project / "services" / "api" / "pyproject.toml"
    api.write_text(api.read_text().replace('"idna>=3.7"', '"idna>=3.10"'))
    # uv resolves one idna for the workspace unless the members are declared as conflicting.
    root = project / "pyproject.toml"
    root.write_text(root.read_text().replace(
        '[tool.uv.workspace]', '[tool.uv]\nconflicts = [[{ package = "api-svc" }, { package = "worker-svc" }]]\n\n'
                               '[tool.uv.workspace]'))
    from helpers.projects import uv_lock

    uv_lock(project)
    build = hatchling_build(project, LAYER, cache=cache, check=False)
    assert_failed_cleanly(build, "function api (from api-svc) needs idna==", "and function worker (from worker-svc) "
                                 "needs idna==3.7", "but one layer holds one version of a package", "lambda-fat")
    fat = hatchling_build(project, FAT, cache=cache)
    versions = {name for name in zip_files(fat.out("api-fat.zip")) if name.startswith("idna-")}
    assert versions and not any("idna-3.7" in n for n in versions)


def test_a_function_without_package_keeps_the_project_as_its_root(tmp_path, cache):
    project = copy_fixture("workspace-app", tmp_path)
    build = hatchling_build(project, LAYER, cache=cache)
    functions = manifest(build.out())["targets"][LAYER]["functions"]
    assert functions["api"]["package"] == "wsapp" and functions["api"]["handler"] is None
    assert functions["api"]["handler_check"] is None


def test_requirements_per_member_agree_with_uv_export(tmp_path):
    from helpers.projects import run_cli, uv_command

    project = copy_fixture("services-app", tmp_path)
    for member in ("api-svc", "worker-svc", "common"):
        ours = run_cli("requirements", str(project), "--python", "3.12", "--package", member)
        assert ours.returncode == 0, ours.stderr
        theirs = __import__("subprocess").run(
            [*uv_command(), "export", "--frozen", "--no-hashes", "--no-header", "--no-annotate", "--no-emit-project",
             "--no-editable", "--no-default-groups", "--package", member],
            cwd=project, capture_output=True, text=True, check=True)
        exported = sorted(line.split(" ;")[0].removeprefix("./").replace("libs/common", "common==1.0.0")
                          for line in theirs.stdout.splitlines() if line.strip())
        assert sorted(ours.stdout.split()) == exported, (member, ours.stdout, theirs.stdout)
    refused = run_cli("requirements", str(project), "--python", "3.12", "--package", "idna")
    assert refused.returncode == 2
    assert "'idna' is not a member of the workspace" in refused.stderr
    assert "members: api-svc, common, services, worker-svc" in refused.stderr


def test_a_deprecated_runtime_builds_with_a_warning_giving_its_dates(tmp_path, cache):
    from helpers.projects import uv_lock

    project = copy_fixture("cdk-app", tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('requires-python = ">=3.11"', 'requires-python = ">=3.10"'))
    configure(project, python="3.10")
    uv_lock(project)
    build = hatchling_build(project, LAYER, cache=cache)
    assert ("warning: python3.10 is a deprecated Lambda runtime (since 2026-10-31: no more security patches); "
            "creating functions") in build.output
    assert "blocked on 2027-02-01" in build.output and "blocked on 2027-03-03" in build.output
    assert manifest(build.out())["targets"][LAYER]["runtime"] == "python3.10"


def test_fat_closures_hold_when_assembled_from_cached_packs(tmp_path, cache):
    """Members with only wheels from the index: the fat zips come from packs, each with its own closure."""
    from helpers.projects import uv_lock

    project = copy_fixture("services-app", tmp_path)
    for member, module in (("api", "api_svc/handler.py"), ("worker", "worker_svc/main.py")):
        pyproject = project / "services" / member / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace('"common", ', "").replace(
            "[tool.uv.sources]\ncommon = { workspace = true }\n", ""))
        code = project / "services" / member / "src" / module
        code.write_text(code.read_text().replace("from common import tag\n", "tag = '{}@common-1.0.0'.format\n"))
    uv_lock(project)
    build = hatchling_build(project, FAT, cache=cache)
    assert "reused from the cache" in build.output or "unpacked and deflated" in build.output  # the packs path
    section = manifest(build.out())["targets"][FAT]
    assert section["functions"]["api"]["distributions"] == ["idna"]
    assert section["functions"]["worker"]["distributions"] == ["python-dateutil", "tzdata"]
    assert not any(n.startswith("dateutil/") for n in zip_files(build.out("api-fat.zip")))
    assert not any(n.startswith("idna/") for n in zip_files(build.out("worker-fat.zip")))
    assert invoke_fat(build.out("api-fat.zip"), tmp_path / "api", "3.12", "api_svc.handler").result == API
    # The same bytes as the full build without the cache.
    before = digests(build.out())
    clean = hatchling_build(project, FAT, cache=cache, args=["-c"])
    assert digests(clean.out()) == before


# --------------------------------------------------------------------------
# function code stays in the project: links, build output, special files


@pytest.fixture
def tiny(tmp_path, cache):
    """A project with no dependencies (src/app), built once: the previous artifacts."""
    from helpers.projects import local_project

    project = local_project(tmp_path / "tiny", "app", {})
    build = hatchling_build(project, LAYER, cache=cache)
    assert zip_files(build.out("app.zip")) == {"app/__init__.py", "app/handler.py",
                                               "app/__pycache__/__init__.cpython-311.pyc",
                                               "app/__pycache__/handler.cpython-311.pyc"}
    return project


def _outside(tmp_path):
    """A credentials file and a directory of files, outside the project."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = SECRET\n")
    (home / "tree" / "deep").mkdir(parents=True)
    (home / "tree" / "deep" / "notes.txt").write_text("SECRET\n")
    return home


@pytest.mark.parametrize(
    "link, target, needles",
    [
        ("src/app/config.txt", ".aws/credentials",
         ["function 'app': src/app/config.txt is a symbolic link to {home}/.aws/credentials, outside the project "
          "({project}); hatch-lambda does not ship files from outside the project",
          'fix: replace the link with a copy of what it points to, or leave it out of the function\'s files '
          '(exclude = ["src/app/config.txt"])']),
        ("src/app/vendor", "tree",
         ["function 'app': src/app/vendor is a symbolic link to {home}/tree (a directory; "
          "src/app/vendor/deep/notes.txt is a file in it), outside the project ({project})",
          'exclude = ["src/app/vendor"]']),
        ("src/app/relative.txt", "../../../home/.aws/credentials",
         ["function 'app': src/app/relative.txt is a symbolic link to ../../../home/.aws/credentials "
          "({home}/.aws/credentials), outside the project ({project})"]),
    ],
    ids=["file", "directory", "relative"],
)
def test_a_link_out_of_the_project_is_refused_and_the_previous_artifacts_stay(tiny, tmp_path, cache, link, target,
                                                                              needles):
    home = _outside(tmp_path)
    before = digests(tiny / "dist" / "lambda")
    (tiny / link).symlink_to(target if target.startswith("..") else home / target)
    build = hatchling_build(tiny, LAYER, FAT, cache=cache, check=False)
    assert_failed_cleanly(build, *(needle.format(home=home, project=tiny) for needle in needles))
    assert "SECRET" not in build.output
    assert digests(tiny / "dist" / "lambda") == before


def test_links_inside_the_project_ship_what_they_point_to(tiny, tmp_path, cache):
    (tiny / "shared" / "sub").mkdir(parents=True)
    (tiny / "shared" / "sub" / "data.json").write_text('{"n": 1}\n')
    (tiny / "src" / "app" / "shared").symlink_to(tiny / "shared")  # a directory, absolute
    (tiny / "src" / "app" / "alias.py").symlink_to("handler.py")  # a file, relative
    (tiny / "src" / "app" / "loop").symlink_to("..")  # back up: hatch walks it once
    build = hatchling_build(tiny, LAYER, cache=cache)
    files = zip_files(build.out("app.zip"))
    assert {"app/shared/sub/data.json", "app/alias.py", "app/handler.py"} <= files
    import zipfile

    with zipfile.ZipFile(build.out("app.zip")) as archive:
        assert archive.read("app/shared/sub/data.json") == b'{"n": 1}\n'
        assert archive.read("app/alias.py") == (tiny / "src" / "app" / "handler.py").read_bytes()
    root = lambda_root(tmp_path / "run", "3.11", layer=build.out("layer.zip"), function=build.out("app.zip"))
    assert invoke(root, "app.alias").result == {"ok": True}


def test_a_dangling_link_a_loop_or_a_named_pipe_is_refused(tiny, cache):
    import os

    before = digests(tiny / "dist" / "lambda")
    (tiny / "src" / "app" / "gone.txt").symlink_to("nowhere.txt")
    build = hatchling_build(tiny, LAYER, cache=cache, check=False)
    assert_failed_cleanly(build, f"function 'app': src/app/gone.txt is a symbolic link to nowhere.txt "
                                 f"({tiny}/src/app/nowhere.txt), which leads to no file (nothing is there, or the "
                                 "links go round in a loop)",
                          "fix: remove the link, or point it at a file inside the project")
    (tiny / "src" / "app" / "gone.txt").unlink()
    (tiny / "src" / "app" / "ping").symlink_to("pong")
    (tiny / "src" / "app" / "pong").symlink_to("ping")
    build = hatchling_build(tiny, LAYER, cache=cache, check=False)
    assert_failed_cleanly(build, f"function 'app': src/app/ping is a symbolic link to pong ({tiny}/src/app/pong), "
                                 "which leads to no file")
    (tiny / "src" / "app" / "ping").unlink()
    (tiny / "src" / "app" / "pong").unlink()
    os.mkfifo(tiny / "src" / "app" / "pipe")
    build = hatchling_build(tiny, LAYER, cache=cache, check=False)  # would block reading the pipe
    assert_failed_cleanly(build, "function 'app': src/app/pipe is not a regular file (a named pipe), which a zip "
                                 'cannot hold', 'exclude = ["src/app/pipe"]')
    assert digests(tiny / "dist" / "lambda") == before


def test_the_output_directories_are_never_function_code(tiny, cache):
    """A selection of everything, an output directory inside the project: the zip does not grow build by build;
    nor does it take in the output of an earlier build with another -d (a directory holding a build's
    manifest.json), while a manifest.json of another kind is code like any file."""
    configure(tiny, directory="build/zips", functions={"app": {"include": ["**"], "sources": ["src"]}})
    configure(tiny, FAT, directory="fat")
    hatchling_build(tiny, FAT, cache=cache)
    (tiny / "build" / "zips").mkdir(parents=True)
    stale = tiny / "build" / "zips" / ".hatch-lambda-999999-x"  # a killed build's scratch directory
    stale.mkdir()
    (stale / "half.py").write_text("")
    (tiny / "web").mkdir()
    (tiny / "web" / "manifest.json").write_text('{"name": "app", "icons": []}\n')  # not a build's: code
    first = hatchling_build(tiny, LAYER, cache=cache)
    expected = {"app/__init__.py", "app/handler.py", "pyproject.toml", "uv.lock", "web/manifest.json",
                "app/__pycache__/__init__.cpython-311.pyc", "app/__pycache__/handler.cpython-311.pyc"}
    assert zip_files(tiny / "build" / "zips" / "app.zip") == expected
    built = digests(tiny / "build" / "zips")
    again = hatchling_build(tiny, LAYER, cache=cache)
    assert digests(tiny / "build" / "zips") == built, again.output
    elsewhere = hatchling_build(tiny, LAYER, cache=cache, args=["-d", "other"])  # -d: that directory too
    hatchling_build(tiny, LAYER, cache=cache, args=["-d", "other"])
    assert zip_files(tiny / "other" / "app.zip") == expected, elsewhere.output
    # Another -d: other/ is no output directory of this build, but its manifest.json says it is a build's.
    third = hatchling_build(tiny, LAYER, FAT, cache=cache, args=["-d", "third"])
    assert zip_files(tiny / "third" / "app.zip") == expected, third.output
    assert zip_files(tiny / "third" / "app-fat.zip") >= expected
    assert not any(name.startswith(("other/", "third/")) for name in zip_files(tiny / "third" / "app-fat.zip"))
    assert "out of function 'app'" not in first.output  # nothing reported: build output is not code


# --------------------------------------------------------------------------
# artifact names: one namespace per output directory


def _tables(project, layer_functions, fat_functions=None, **fat_keys):
    def change(data):
        target_table(data)["functions"] = layer_functions
        if fat_functions is not None:
            target_table(data, FAT).update({"functions": fat_functions, **fat_keys})
        else:
            data["tool"]["hatch"]["build"]["targets"].pop(FAT, None)

    edit_pyproject(project, change)


def test_names_clashing_across_the_targets_are_refused_before_building(tiny, cache):
    """lambda-layer's function api-fat and lambda-fat's function api would both write api-fat.zip."""
    before = digests(tiny / "dist" / "lambda")
    _tables(tiny, {"api-fat": {}}, {"api": {}})
    fix = ("fix: rename one of the functions (under [tool.hatch.build.targets.{}.functions] or "
           "[tool.hatch.build.targets.{}.functions] in pyproject.toml), or build the two targets into different "
           "directories (directory = ...)")
    for kind, other, problem in (
        (LAYER, FAT, "function 'api-fat' of lambda-layer and function 'api' of lambda-fat (in pyproject.toml) "
                     "both write api-fat.zip in {}"),
        (FAT, LAYER, "function 'api' of lambda-fat and function 'api-fat' of lambda-layer (in pyproject.toml) "
                     "both write api-fat.zip in {}"),
    ):
        build = hatchling_build(tiny, kind, cache=cache, check=False)
        assert_failed_cleanly(build, problem.format(tiny / "dist" / "lambda"), fix.format(kind, other))
        assert "distributions from uv.lock" not in build.output  # refused before anything was read or built
    assert digests(tiny / "dist" / "lambda") == before
    # The hook, -d and hatch-lambda build put both targets in one directory: the same names are refused there.
    build = hatchling_build(tiny, LAYER, cache=cache, args=["-d", "both"], check=False)
    assert_failed_cleanly(build, "both write api-fat.zip in {}".format(tiny / "both"))
    # Each target into a directory of its own: no clash.
    _tables(tiny, {"api-fat": {}}, {"api": {}}, directory="fat")
    hatchling_build(tiny, LAYER, FAT, cache=cache)
    assert (tiny / "dist" / "lambda" / "api-fat.zip").is_file() and (tiny / "fat" / "api-fat.zip").is_file()


def test_a_name_the_manifest_says_another_target_wrote_is_refused(tiny, cache):
    _tables(tiny, {"api-fat": {}})  # no lambda-fat table yet
    layer = hatchling_build(tiny, LAYER, cache=cache)
    before = digests(layer.out())
    _tables(tiny, {"other": {}}, {"api": {}})  # the tables no longer clash; the directory still holds api-fat.zip
    build = hatchling_build(tiny, FAT, cache=cache, check=False)
    assert_failed_cleanly(build, f"function 'api' of lambda-fat would write api-fat.zip in {layer.out()}, where "
                                 "manifest.json says function 'api-fat' of lambda-layer wrote api-fat.zip",
                          "fix: rename one of the functions")
    assert digests(layer.out()) == before
    assert manifest(layer.out())["targets"][LAYER]["artifacts"][1]["sha256"] == before["api-fat.zip"]


def test_clean_leaves_a_file_another_target_lists(tiny, cache):
    """A manifest where both sections list one file (as an older version could write): -c keeps it."""
    import json

    _tables(tiny, {"app": {}}, {"app": {}})
    both = hatchling_build(tiny, LAYER, FAT, cache=cache)
    document = manifest(both.out())
    shared = next(a for a in document["targets"][LAYER]["artifacts"] if a["file"] == "app.zip")
    document["targets"][FAT]["artifacts"].append(shared)
    (both.out("manifest.json")).write_text(json.dumps(document))
    kept = digests(both.out())["app.zip"]
    hatchling_build(tiny, FAT, cache=cache, args=["-c"])
    assert digests(both.out())["app.zip"] == kept
    assert (both.out("app-fat.zip")).is_file()  # built again


@pytest.mark.parametrize(
    "functions, problem",
    [
        ({"Api": {}, "api": {}}, "function 'Api' and function 'api' of lambda-layer write Api.zip and api.zip, "
                                 "one file where the file system ignores case (macOS, Windows)"),
        ({"Layer": {}}, "function 'Layer' and the layer of lambda-layer write Layer.zip and layer.zip, one file "
                        "where the file system ignores case (macOS, Windows)"),
    ],
    ids=["two-functions", "the-layer"],
)
def test_names_that_differ_only_in_case_are_refused(tmp_path, functions, problem):
    from hatch_lambda.assemble.names import check_names
    from hatch_lambda.config.options import load_config
    from hatch_lambda.errors import LambdaBuildError

    config = load_config(LAYER, {"functions": functions}, {}, project_name="app", requires_python=">=3.11")
    with pytest.raises(LambdaBuildError) as raised:
        check_names(config, tmp_path)
    assert raised.value.problem == problem
    assert raised.value.fix == "rename one of them in the functions of [tool.hatch.build.targets.lambda-layer] in " \
                               "pyproject.toml"
