"""hatchling plugin registration."""

from hatchling.plugin import hookimpl

from .build_hook import LambdaBuildHook
from .builders import LambdaFatBuilder, LambdaLayerBuilder


@hookimpl
def hatch_register_builder():
    return [LambdaLayerBuilder, LambdaFatBuilder]


@hookimpl
def hatch_register_build_hook():
    return LambdaBuildHook
