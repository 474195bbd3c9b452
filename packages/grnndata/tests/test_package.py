"""The installed package: its version, its console script, and where it finds the data folder."""

import os
from importlib.metadata import entry_points, version

import pytest

import grnndata
from grnndata.settings import (
    DATA_DIR_ENV,
    DataDirNotFoundError,
    data_dir,
    default_data_dir,
    find_data_dir,
)


def test_version_matches_installed_metadata():
    assert grnndata.__version__ == version("grnndata")
    assert tuple(int(x) for x in grnndata.__version__.split(".")[:2]) >= (0, 1)


def test_the_grnndata_command_is_a_console_script():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("grnndata") == "grnndata.command:main"


def test_data_dir_env_setting_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert data_dir() == tmp_path.resolve()
    other = tmp_path / "given"
    other.mkdir()
    assert data_dir(other) == other.resolve()  # an explicit argument wins over the variable


def test_data_dir_missing_env_folder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "nope"))
    with pytest.raises(DataDirNotFoundError, match=DATA_DIR_ENV):
        data_dir()


def test_the_data_folder_is_never_guessed_from_the_working_directory(tmp_path, monkeypatch):
    """A ``shared/data`` beside the working directory (the monorepo's layout) is not used:
    only an argument, SCPRINT_DATA_DIR or the per-user folder count."""
    (tmp_path / "shared" / "data").mkdir(parents=True)
    work = tmp_path / "repo" / "sub"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert find_data_dir() is None
    with pytest.raises(DataDirNotFoundError, match=f"set the environment variable {DATA_DIR_ENV}"):
        data_dir()


@pytest.mark.skipif(os.name == "nt", reason="the per-user folder of Linux and other Unix systems")
def test_the_per_user_cache_folder_is_the_last_resort(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = (
        tmp_path / "home" / "Library" / "Caches" / "scprint" / "data"
        if os.uname().sysname == "Darwin"
        else tmp_path / "cache" / "scprint" / "data"
    )
    assert default_data_dir() == expected
    assert find_data_dir() is None  # not created yet
    expected.mkdir(parents=True)
    assert data_dir() == expected.resolve()
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert data_dir() == tmp_path.resolve()  # the variable still wins


def _imported_after(code: str) -> set[str]:
    """Top-level modules imported by a fresh interpreter running ``code``."""
    import subprocess
    import sys

    script = (
        f"import sys\n{code}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_importing_grnndata_and_its_cli_conventions_is_light():
    """``import grnndata`` (and :mod:`grnndata.cli`, which command lines build on) loads no data
    stack; the public names still resolve, on first use."""
    heavy = {"anndata", "zarr", "scipy", "pandas", "numpy", "h5py", "matplotlib"}
    assert not _imported_after("import grnndata\nimport grnndata.cli") & heavy
    found = _imported_after("from grnndata import GRNAnnData, as_network, analysis")
    assert {"anndata", "scipy"} <= found
    assert set(grnndata.__all__) <= set(dir(grnndata))
    for name in grnndata.__all__:
        assert getattr(grnndata, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'GRNAnndata'"):
        grnndata.GRNAnndata  # noqa: B018
