"""hatchling plugin registration."""

from hatchling.plugin import hookimpl

from hatch_lambda.plugin.build_hook import LambdaBuildHook
from hatch_lambda.plugin.builders import LambdaFatBuilder, LambdaLayerBuilder


@hookimpl
def hatch_register_builder() -> list[type]:
    return [LambdaLayerBuilder, LambdaFatBuilder]


@hookimpl
def hatch_register_build_hook() -> type:
    return LambdaBuildHook
