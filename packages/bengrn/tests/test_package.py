"""The installed package exposes the version its metadata declares."""

from importlib.metadata import version

import bengrn


def test_version_matches_installed_metadata():
    assert bengrn.__version__ == version("bengrn")
    assert tuple(int(x) for x in bengrn.__version__.split(".")[:2]) >= (0, 1)
