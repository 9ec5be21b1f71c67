"""The lambda-layer / lambda-fat tables: hatch_lambda.config.load_config."""

from __future__ import annotations

import pytest

from hatch_lambda.config.functions import Function
from hatch_lambda.config.options import (
    FAT,
    LAYER,
    MAX_UNZIPPED_MB,
    MAX_ZIPPED_MB,
    load_config,
)
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.runtime.runtimes import DEFAULT_IMAGE
from hatch_lambda.runtime.target import Target

T_LAYER = "[tool.hatch.build.targets.lambda-layer]"
T_FAT = "[tool.hatch.build.targets.lambda-fat]"


def layer(table=None, *, requires=">=3.11", name="demo"):
    return load_config(LAYER, table or {}, {}, project_name=name, requires_python=requires)


def fat(own=None, layer_table=None, *, requires=">=3.11", name="demo"):
    return load_config(FAT, own or {}, layer_table or {}, project_name=name, requires_python=requires)


def error(call, *args, **kwargs) -> LambdaBuildError:
    with pytest.raises(LambdaBuildError) as raised:
        call(*args, **kwargs)
    return raised.value


def test_defaults():
    config = layer()
    assert config.kind == LAYER
    assert config.target == Target("3.11", "x86_64")
    assert config.installer == "auto"
    assert config.image == DEFAULT_IMAGE
    assert config.image_name == "public.ecr.aws/lambda/python:3.11"
    assert config.docker_network is None
    assert (config.extras, config.groups, config.exclude_packages) == ((), (), ())
    assert config.layout == "python" and config.layer_prefix == "python/"
    assert config.strip is True and config.compression_level == 6
    assert (config.strip_patterns, config.keep_patterns) == ((), ())
    assert config.functions == (Function(name="demo"),)
    assert config.functions[0].is_default
    assert (config.max_zipped_mb, config.max_unzipped_mb) == (MAX_ZIPPED_MB, MAX_UNZIPPED_MB) == (50, 250)
    assert config.size_check == "error"
    assert config.package is None
    assert (config.audit, config.smoke_import, config.smoke_import_skip) == ("error", False, ())


@pytest.mark.parametrize(
    ("requires", "python"),
    [(">=3.11", "3.11"), (">=3.12", "3.12"), (">=3.8", "3.10"), (None, "3.10"), ("~=3.13.1", "3.13"),
     (">3.11", "3.11"), ("==3.14.*", "3.14")],
)
def test_python_defaults_to_the_lowest_runtime_requires_python_allows(requires, python):
    assert layer(requires=requires).target.python == python


def test_all_keys():
    config = layer({
        "python": "3.13",
        "arch": "aarch64",  # alias
        "installer": "docker",
        "image": "registry.example/lambda:{python}-{arch}",
        "docker-network": "host",
        "extras": ["http"],
        "groups": ["dev"],
        "exclude-packages": ["boto3"],
        "layout": "site-packages",
        "strip": False,
        "compression-level": 9,
        "strip-patterns": ["*.pyi"],
        "keep-patterns": ["*.dist-info/RECORD"],
        "functions": {"b": {"packages": ["src/b"]}, "a": {"include": ["src/a"], "exclude": ["src/a/t"],
                                                          "only-include": ["src/a"]}},
        "max-unzipped-mb": 100.5,
        "max-zipped-mb": 10,
        "size-check": "warn",
        "package": "member",
        "audit": "warn",
        "smoke-import": True,
        "smoke-import-skip": ["needs_env"],
        "directory": "out",  # hatchling's own key
        "versions": ["standard"],
    })
    assert config.target == Target("3.13", "arm64")
    assert config.image_name == "registry.example/lambda:3.13-arm64"
    assert config.layer_prefix == "python/lib/python3.13/site-packages/"
    assert (config.installer, config.docker_network, config.size_check) == ("docker", "host", "warn")
    assert (config.audit, config.smoke_import, config.smoke_import_skip) == ("warn", True, ("needs_env",))
    assert (config.extras, config.groups, config.exclude_packages) == (("http",), ("dev",), ("boto3",))
    assert (config.strip, config.strip_patterns, config.keep_patterns) == (False, ("*.pyi",), ("*.dist-info/RECORD",))
    assert config.compression_level == 9
    # sorted by name, options as tuples
    assert config.functions == (
        Function("a", include=("src/a",), exclude=("src/a/t",), only_include=("src/a",)),
        Function("b", packages=("src/b",)),
    )
    assert (config.max_unzipped_mb, config.max_zipped_mb, config.package) == (100.5, 10, "member")


def test_fat_reads_the_layer_table_for_keys_it_does_not_set():
    layer_table = {"python": "3.12", "arch": "arm64", "strip": False, "functions": {"api": {"packages": ["src"]}},
                   "extras": ["x"], "max-zipped-mb": 200, "audit": "off", "smoke-import": True}
    config = fat({}, layer_table)
    assert config.kind == FAT
    assert (config.audit, config.smoke_import) == ("off", True)
    assert config.target == Target("3.12", "arm64")
    assert config.strip is False and config.extras == ("x",) and config.max_zipped_mb == 200
    assert [f.name for f in config.functions] == ["api"]
    own = fat({"arch": "x86_64", "functions": {"solo": {}}}, layer_table)
    assert own.target == Target("3.12", "x86_64")
    assert [f.name for f in own.functions] == ["solo"]
    # and the layer never reads the fat table
    assert load_config(LAYER, layer_table, {"python": "3.13"}, project_name="d", requires_python=None).target.python == "3.12"


def test_exclude_packages_is_not_inherited():
    assert fat().exclude_packages == ("boto3", "botocore")
    assert fat({}, {"exclude-packages": ["pyarrow"]}).exclude_packages == ("boto3", "botocore")
    assert fat({"exclude-packages": []}, {"exclude-packages": ["pyarrow"]}).exclude_packages == ()
    assert fat({"exclude-packages": ["x"]}).exclude_packages == ("x",)
    assert layer({"exclude-packages": ["pyarrow"]}).exclude_packages == ("pyarrow",)


@pytest.mark.parametrize(
    ("own", "inherited", "where"),
    [
        ({"pyton": "3.11"}, {}, T_FAT),
        ({}, {"pyton": "3.11"}, T_LAYER),
    ],
)
def test_unknown_key_names_its_table(own, inherited, where):
    exc = error(fat, own, inherited)
    assert exc.problem == f"unknown key 'pyton' in {where} of pyproject.toml"
    assert exc.fix.startswith("valid keys: arch, audit, bytecode, compression-level, docker-network, exclude-packages, extras, functions")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("strip", "yes", "true or false"),
        ("strip", 1, "true or false"),
        ("extras", "http", "a list of strings"),
        ("groups", ["dev", 1], "a list of strings"),
        ("strip-patterns", "*.pyi", "a list of strings"),
        ("keep-patterns", [["nested"]], "a list of strings"),
        ("exclude-packages", "boto3", "a list of strings"),
        ("max-zipped-mb", "50", "a positive number"),
        ("max-zipped-mb", True, "a positive number"),
        ("max-unzipped-mb", 0, "a positive number"),
        ("max-unzipped-mb", -1, "a positive number"),
        ("compression-level", 0, "a whole number from 1 to 12"),
        ("compression-level", 13, "a whole number from 1 to 12"),
        ("compression-level", 6.0, "a whole number from 1 to 12"),
        ("compression-level", True, "a whole number from 1 to 12"),
        ("layout", "flat", "'python' or 'site-packages'"),
        ("installer", "pip", "'auto' or 'wheels' or 'docker'"),
        ("size-check", "strict", "'error' or 'warn' or 'off'"),
        ("audit", "relaxed", "'error' or 'warn' or 'off'"),
        ("audit", False, "'error' or 'warn' or 'off'"),
        ("smoke-import", "yes", "true or false"),
        ("smoke-import-skip", "needs_env", "a list of strings"),
        ("image", 3, "a string"),
        ("package", ["a"], "a string"),
        ("functions", ["api"], "a table of function name -> { packages, include, exclude, handler, ... }"),
        ("functions", {}, "a table of function name -> { packages, include, exclude, handler, ... }"),
        ("python", 3.12, "a string, one of 3.10, 3.11, 3.12, 3.13, 3.14"),
    ],
)
def test_wrong_types(key, value, expected):
    exc = error(layer, {key: value})
    assert exc.problem == f"{key} in {T_LAYER} of pyproject.toml must be {expected}, not {value!r}"


def test_wrong_type_in_the_fat_table_names_it():
    exc = error(fat, {"strip": "no"}, {"strip": True})
    assert exc.problem.startswith(f"strip in {T_FAT} of pyproject.toml")
    exc = error(fat, {}, {"strip": "no"})
    assert exc.problem.startswith(f"strip in {T_LAYER} of pyproject.toml")


@pytest.mark.parametrize(
    ("table", "requires", "problem", "fix"),
    [
        ({"python": "3.9"}, None,
         f"python 3.9 is a retired Lambda runtime; AWS no longer accepts new functions on it (from {T_LAYER} of "
         "pyproject.toml)", "use one of 3.10, 3.11, 3.12, 3.13, 3.14"),
        ({"python": "3.15"}, None, f"unknown Lambda python version '3.15' (from {T_LAYER} of pyproject.toml)",
         "use one of 3.10, 3.11, 3.12, 3.13, 3.14"),
        ({"python": "3.11", "arch": "sparc"}, None, f"unknown Lambda arch 'sparc' (from {T_LAYER} of pyproject.toml)",
         "use 'x86_64' or 'arm64'"),
        ({}, ">=3.15", "requires-python '>=3.15' allows no Lambda runtime",
         "Lambda runs python 3.10, 3.11, 3.12, 3.13, 3.14; widen requires-python"),
        ({}, "not a specifier", None, None),
    ],
)
def test_bad_python_and_arch(table, requires, problem, fix):
    exc = error(layer, table, requires=requires)
    if problem is None:
        assert exc.problem.startswith("invalid requires-python 'not a specifier'")
        return
    assert exc.problem == problem
    assert exc.fix == fix


def test_arch_aliases():
    assert layer({"arch": "amd64"}).target.arch == "x86_64"
    assert layer({"arch": "aarch64"}).target.arch == "arm64"
    assert layer({"arch": "arm64"}).target.machine == "aarch64"


def test_environment_overrides_python_and_arch():
    environ = {"HATCH_LAMBDA_PYTHON": "3.13", "HATCH_LAMBDA_ARCH": "aarch64"}
    table = {"python": "3.12", "arch": "x86_64"}
    assert load_config(LAYER, table, {}, project_name="demo", requires_python=">=3.11",
                       environ=environ).target == Target("3.13", "arm64")
    assert load_config(FAT, {}, table, project_name="demo", requires_python=">=3.11",
                       environ={"HATCH_LAMBDA_ARCH": "arm64"}).target == Target("3.12", "arm64")
    # empty values and no environ leave the table's
    assert load_config(LAYER, table, {}, project_name="demo", requires_python=">=3.11",
                       environ={"HATCH_LAMBDA_PYTHON": "", "HATCH_LAMBDA_ARCH": " "}).target == Target("3.12")
    assert layer(table).target == Target("3.12")


@pytest.mark.parametrize(
    ("environ", "problem", "fix"),
    [
        ({"HATCH_LAMBDA_PYTHON": "3.9"},
         "python 3.9 is a retired Lambda runtime; AWS no longer accepts new functions on it "
         "(from the environment variable HATCH_LAMBDA_PYTHON)", "use one of 3.10, 3.11, 3.12, 3.13, 3.14"),
        ({"HATCH_LAMBDA_ARCH": "sparc"},
         "unknown Lambda arch 'sparc' (from the environment variable HATCH_LAMBDA_ARCH)", "use 'x86_64' or 'arm64'"),
    ],
)
def test_bad_environment_override_names_the_variable(environ, problem, fix):
    exc = error(load_config, LAYER, {}, {}, project_name="demo", requires_python=">=3.11", environ=environ)
    assert (exc.problem, exc.fix) == (problem, fix)


@pytest.mark.parametrize(
    ("functions", "problem"),
    [
        ({"api": ["src/api"]}, f"functions.api in {T_LAYER} of pyproject.toml must be a table like"),
        ({"api": {"modules": ["x"]}}, f"unknown key 'modules' in functions.api in {T_LAYER} of pyproject.toml"),
        ({"api": {"packages": "src/api"}},
         f"packages in functions.api in {T_LAYER} of pyproject.toml must be a list of strings, not 'src/api'"),
        ({"layer": {}}, f"function name 'layer' in {T_LAYER} of pyproject.toml is not usable: 'layer' names the "
                        "layer's zip"),
        ({"a/b": {}}, f"function name 'a/b' in {T_LAYER} of pyproject.toml is not usable: Lambda takes 1 to 64 "
                      "letters, digits, hyphens and underscores"),
        ({".hidden": {}}, f"function name '.hidden' in {T_LAYER} of pyproject.toml is not usable"),
        ({"": {}}, f"function name '' in {T_LAYER} of pyproject.toml is not usable"),
        ({"x" * 300: {}}, f"function name '{'x' * 67}...' in {T_LAYER} of pyproject.toml is not usable"),
        ({"a\0b": {}}, f"function name 'a\\x00b' in {T_LAYER} of pyproject.toml is not usable"),
        ({"api\n": {}}, f"function name 'api\\n' in {T_LAYER} of pyproject.toml is not usable: Lambda takes 1 to "
                       "64 letters, digits, hyphens and underscores (so no path separator, NUL, dot or space)"),
        ({"x" * 65: {}}, f"function name '{'x' * 65}' in {T_LAYER} of pyproject.toml is not usable"),
        ({"my api": {}}, f"function name 'my api' in {T_LAYER} of pyproject.toml is not usable"),
        ({"a\\b": {}}, f"function name 'a\\\\b' in {T_LAYER} of pyproject.toml is not usable"),
        ({"api": {"handler": "app"}},
         f"handler in functions.api in {T_LAYER} of pyproject.toml must be module.attribute, as Lambda's Handler "
         "setting, not 'app'"),
        ({"api": {"handler": "app.handler()"}}, f"handler in functions.api in {T_LAYER} of pyproject.toml must be"),
        ({"api": {"handler": ["app.handler"]}},
         f"handler in functions.api in {T_LAYER} of pyproject.toml must be a non-empty string, not ['app.handler']"),
        ({"api": {"package": ""}}, f"package in functions.api in {T_LAYER} of pyproject.toml must be a non-empty"),
        ({"api": {"sources": "src"}}, f"sources in functions.api in {T_LAYER} of pyproject.toml must be a list of "
                                      "path prefixes to remove (hatch's wheel option), or a table"),
        ({"api": {"environment": {"A": 1}}},
         f"environment in functions.api in {T_LAYER} of pyproject.toml must be a table of names -> string values"),
    ],
)
def test_bad_functions(functions, problem):
    exc = error(layer, {"functions": functions})
    assert exc.problem.startswith(problem), exc.problem


def test_function_names_lambda_takes_are_read():
    names = ["a", "x" * 64, "api-v2_EU", "0"]
    config = layer({"functions": {name: {} for name in names}})
    assert [f.name for f in config.functions] == sorted(names)


def test_function_errors_in_the_inherited_table_name_it():
    exc = error(fat, {}, {"functions": {"api": {"modules": []}}})
    assert exc.problem == f"unknown key 'modules' in functions.api in {T_LAYER} of pyproject.toml"
    assert exc.fix == "valid keys: packages, include, exclude, only-include, sources, package, handler, environment"


def test_function_keys_for_handlers_members_and_sources():
    config = layer({"functions": {
        "api": {"handler": "app.main.handler", "sources": ["src"], "environment": {"TABLE": "t", "A": "1"}},
        "worker": {"package": "jobs", "handler": "jobs/run.main", "sources": {"src/jobs": "jobs"}},
    }})
    api, worker = config.functions
    assert (api.handler, api.handler_module, api.handler_attribute) == ("app.main.handler", "app.main", "handler")
    assert api.sources == (("src", ""),) and api.environment == (("A", "1"), ("TABLE", "t"))
    assert not api.is_default  # sources change what the wheel selection ships
    assert (worker.package, worker.handler_module, worker.handler_attribute) == ("jobs", "jobs.run", "main")
    assert worker.sources == (("src/jobs", "jobs"),)


def test_message_has_problem_then_fix():
    exc = error(layer, {"arch": "sparc"})
    assert str(exc) == f"{exc.problem}\n  fix: {exc.fix}"
