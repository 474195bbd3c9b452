"""The installed package exposes the version its metadata declares."""

from importlib.metadata import version

import scprint


def test_version_matches_installed_metadata():
    assert scprint.__version__ == version("scprint-model")
    assert tuple(int(x) for x in scprint.__version__.split(".")[:2]) >= (0, 1)
