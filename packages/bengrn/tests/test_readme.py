"""The README's examples run as written: every ```python block is executed (on the shared real
data), every `bengrn` command line parses, the TOML and YAML snippets are what the code reads."""

from __future__ import annotations

import re
import shlex
from importlib import resources
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.M | re.S)


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_examples_run_as_written(index, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = _blocks("python")[index]
    namespace: dict = {"__name__": f"readme_example_{index}"}
    exec(compile(code, f"README.md python block {index + 1}", "exec"), namespace)  # noqa: S102


def test_command_lines_parse():
    from bengrn.cli import build_parser

    commands = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("bengrn "):
                commands.append(shlex.split(line)[1:])
    assert len(commands) >= 5
    for argv in commands:
        args = build_parser().parse_args(argv)
        assert args.command in {"run", "report", "list"}


def test_the_entry_point_and_task_file_snippets_are_what_bengrn_reads():
    import yaml

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    from bengrn.methods import ENTRY_POINT_GROUP
    from bengrn.tasks.custom import _KEYS

    (toml,) = _blocks("toml")
    groups = tomllib.loads(toml)["project"]["entry-points"]
    assert list(groups) == [ENTRY_POINT_GROUP]
    (task,) = _blocks("yaml")
    assert set(yaml.safe_load(task)) == set(_KEYS)


def test_the_package_ships_type_information():
    assert resources.files("bengrn").joinpath("py.typed").is_file()
