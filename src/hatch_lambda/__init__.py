"""Build AWS Lambda layers and function zips from a project's uv.lock."""

__version__ = "0.1.0"
