"""The installed package exposes the version its metadata declares."""

from importlib.metadata import version

import grnndata


def test_version_matches_installed_metadata():
    assert grnndata.__version__ == version("grnndata")
    assert tuple(int(x) for x in grnndata.__version__.split(".")[:2]) >= (0, 1)


def test_data_dir_env_setting_wins(tmp_path, monkeypatch):
    from grnndata.settings import DATA_DIR_ENV, data_dir

    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert data_dir() == tmp_path.resolve()


def test_data_dir_missing_env_folder_is_a_clear_error(tmp_path, monkeypatch):
    import pytest

    from grnndata.settings import DATA_DIR_ENV, DataDirNotFoundError, data_dir

    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "nope"))
    with pytest.raises(DataDirNotFoundError, match=DATA_DIR_ENV):
        data_dir()
