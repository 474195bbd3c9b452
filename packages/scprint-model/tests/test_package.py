"""The installed package: its version, its typing marker and its bengrn plug-in entry point."""

from importlib.metadata import entry_points, version
from pathlib import Path

import scprint


def test_version_matches_installed_metadata():
    assert scprint.__version__ == version("scprint-model")
    assert tuple(int(x) for x in scprint.__version__.split(".")[:2]) >= (0, 1)


def test_package_ships_its_typing_marker():
    assert (Path(scprint.__file__).parent / "py.typed").is_file()


def test_scprint_is_registered_as_a_bengrn_method():
    from scprint.tasks import bengrn_method

    methods = {ep.name: ep for ep in entry_points(group="bengrn.methods")}
    assert methods["scprint"].value == "scprint.tasks.gninfer.plugin:bengrn_method"
    assert methods["scprint"].load() is bengrn_method
