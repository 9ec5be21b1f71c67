"""hatchling plugin registration."""

from hatchling.plugin import hookimpl

from .builders import LambdaFatBuilder, LambdaLayerBuilder


@hookimpl
def hatch_register_builder():
    return [LambdaLayerBuilder, LambdaFatBuilder]
