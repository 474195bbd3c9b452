"""Sessions for the monorepo: per-package tests, lint, benchmarks and the end-to-end demo.

Every session makes its own virtualenv with pip and installs the packages from their local paths,
the way a user would (``pip install packages/grnndata``), never in editable mode.

torch is not pinned in any package's metadata (they ask for ``torch>=2.4``). Which torch a session
installs first is set by the environment variable ``SCPRINT_TORCH_SPEC`` (default ``torch==2.13.0``,
the version the sessions are tested with); set it to the pip arguments of another build, e.g.
``torch`` or ``torch==2.5.1``, followed for a CUDA build by the ``--index-url`` option of the
install command PyTorch's website gives for your CUDA version.

Real data is found through ``SCPRINT_DATA_DIR``; when it is unset, sessions point it at
``../shared/data`` beside the repository if that folder exists.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PACKAGES = ROOT / "packages"
GRNNDATA = str(PACKAGES / "grnndata")
BENGRN = str(PACKAGES / "bengrn")
SCPRINT = str(PACKAGES / "scprint-model")
#: The repository's scripts beside the packages, each folder with its own tests and pytest.ini.
DEMO = str(ROOT / "demo")
BENCHMARKS = str(ROOT / "benchmarks")

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = False
# A session whose interpreter is missing fails instead of being skipped (CI must not pass by skipping).
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
# grnndata and bengrn need no torch, so they are also tested on the newest Python they support.
# nox finds python3.13 on PATH; `.ci/python313.sh` prints one (building it if none is installed).
PYTHON_NEWEST = "3.13"


def _env() -> dict[str, str]:
    env = {"MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    if not os.environ.get("SCPRINT_DATA_DIR"):
        shared = ROOT.parent / "shared" / "data"
        if shared.is_dir():
            env["SCPRINT_DATA_DIR"] = str(shared)
    return env


def _install_torch(session: nox.Session) -> None:
    spec = os.environ.get("SCPRINT_TORCH_SPEC", "torch==2.13.0")
    session.install(*shlex.split(spec))


def _pytest(session: nox.Session, package_dir: str) -> None:
    """Run pytest from a package's (or the demo's, the benchmarks') folder, with its config and
    tests/, against the installed packages."""
    with session.chdir(package_dir):
        session.run("pytest", *session.posargs, env=_env())


@nox.session(name="tests-grnndata", python=PYTHON)
def tests_grnndata(session: nox.Session) -> None:
    """grnndata alone with its declared dependencies."""
    session.install(f"{GRNNDATA}[test]")
    _pytest(session, GRNNDATA)


@nox.session(name="tests-bengrn", python=PYTHON)
def tests_bengrn(session: nox.Session) -> None:
    """bengrn with grnndata (its only sibling dependency)."""
    session.install(GRNNDATA, f"{BENGRN}[test]")
    _pytest(session, BENGRN)


@nox.session(name="tests-scprint", python=PYTHON)
def tests_scprint(session: nox.Session) -> None:
    """scprint-model with grnndata, torch (CPU by default) and triton (interpreter mode on CPU)."""
    _install_torch(session)
    session.install(GRNNDATA, BENGRN, f"{SCPRINT}[test,triton,bench]")
    _pytest(session, SCPRINT)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """All three packages in one environment (the README's test command), then the tests of the
    demo's and the benchmarks' scripts."""
    _install_torch(session)
    session.install(
        GRNNDATA, f"{GRNNDATA}[test]", f"{BENGRN}[test]", f"{SCPRINT}[test,triton,bench]"
    )
    for folder in (GRNNDATA, BENGRN, SCPRINT, DEMO, BENCHMARKS):
        _pytest(session, folder)


@nox.session(name="tests-py313", python=PYTHON_NEWEST)
def tests_py313(session: nox.Session) -> None:
    """grnndata and bengrn on Python 3.13 (no torch); needs python3.13 on PATH.

    ``export PATH="$(dirname "$(bash .ci/python313.sh)"):$PATH"`` provides one (see the README)."""
    session.install(f"{GRNNDATA}[test]", f"{BENGRN}[test]")
    for package_dir in (GRNNDATA, BENGRN):
        _pytest(session, package_dir)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check + ruff format --check over the whole repository; benchmark results name no
    machine paths and record their commit, every results file a README cites is committed, and
    ``benchmarks/run_all.py`` has a job for every results file."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", "benchmarks/_common.py", "--check-results")
    session.run("python", "benchmarks/run_all.py", "--check")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run benchmarks/ and write benchmarks/results/ (pass options after --, e.g. -- --full)."""
    _install_torch(session)
    session.install(GRNNDATA, BENGRN, f"{SCPRINT}[triton,bench]", "psutil>=5.9", "pytest>=7.4")
    session.run("python", str(ROOT / "benchmarks" / "run_all.py"), *session.posargs, env=_env())


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job end to end on real data; writes demo_output/report.md."""
    _install_torch(session)
    session.install(GRNNDATA, BENGRN, f"{SCPRINT}[triton,bench]")
    session.run(
        "python",
        str(ROOT / "demo" / "run_demo.py"),
        "--out",
        str(ROOT / "demo_output"),
        *session.posargs,
        env=_env(),
    )


@nox.session(python=PYTHON)
def gpu(session: nox.Session) -> None:
    """The whole GPU check on a CUDA machine: ``pytest -m gpu``, then the GPU benchmark (writes
    benchmarks/results/), bounded to about 8 minutes. Needs a CUDA torch build:
    ``SCPRINT_TORCH_SPEC="torch --index-url <URL>"`` with the index URL of the install command
    PyTorch's website gives for your CUDA version.
    ``nox -s gpu -- --smoke`` runs it on CPU in Triton's interpreter with tiny sizes."""
    _install_torch(session)
    session.install(GRNNDATA, BENGRN, f"{SCPRINT}[test,triton,bench]")
    session.run(
        "bash",
        str(ROOT / "benchmarks" / "kernels" / "gpu_check.sh"),
        *session.posargs,
        env={**_env(), "PYTHON": "python"},
        external=True,
    )
