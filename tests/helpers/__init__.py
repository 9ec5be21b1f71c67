"""What the tests share: projects, builds, Lambda-style runs, the Docker engine, a package server.

pytest puts ``tests/`` on ``sys.path``, so a test imports ``helpers.<module>``; nothing is imported
from ``conftest``, which only declares the fixtures.
"""
