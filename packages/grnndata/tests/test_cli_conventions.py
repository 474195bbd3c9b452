"""The shared command-line conventions (``grnndata.cli``) on a small parser built in the test."""

from __future__ import annotations

import argparse
import logging
import os

import pytest

from grnndata.cli import (
    CliParser,
    UsageError,
    add_common_options,
    add_data_dir_option,
    missing_help,
    parse_params,
    run_cli,
    use_data_dir,
)


def _parser(with_help: bool = True) -> CliParser:
    parser = CliParser(prog="tool")
    add_common_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run it" if with_help else None)
    add_common_options(run)
    add_data_dir_option(run)
    run.add_argument("--out", required=True, help="output" if with_help else None)
    run.add_argument("--param", action="append", default=[], help="NAME=VALUE")
    return parser


def test_common_flags_before_or_after_the_subcommand() -> None:
    parser = _parser()
    before = parser.parse_args(["-vv", "--debug", "run", "--out", "x"])
    after = parser.parse_args(["run", "--out", "x", "-v", "-v", "--debug"])
    assert before.verbose == after.verbose == 2
    assert before.debug and after.debug
    neither = parser.parse_args(["run", "--out", "x"])
    assert not hasattr(neither, "verbose")


def test_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise UsageError("the input is wrong\nsecond line")

    assert run_cli("tool", _parser(), handler, ["run", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert err == "tool: error: the input is wrong\n"
    assert run_cli("tool", _parser(), handler, ["run", "--out", "x", "--outt", "y"]) == 2
    assert "did you mean --out?" in capsys.readouterr().err


def test_unexpected_errors_exit_1_and_debug_shows_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise RuntimeError("boom")

    assert run_cli("tool", _parser(), handler, ["run", "--out", "x"]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert run_cli("tool", _parser(), handler, ["--debug", "run", "--out", "x"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_quiet_and_verbose_set_the_log_level() -> None:
    seen = {}

    def handler(args: argparse.Namespace) -> int:
        seen["level"] = logging.getLogger().level
        return 0

    run_cli("tool", _parser(), handler, ["run", "--out", "x", "-q"])
    assert seen["level"] == logging.ERROR
    run_cli("tool", _parser(), handler, ["-v", "run", "--out", "x"])
    assert seen["level"] == logging.INFO


def test_parse_params_reads_literals_and_refuses_malformed_items() -> None:
    assert parse_params(["n_trees=50", "alpha=0.5", "name=abc", "genie3.x=[1, 2]"]) == {
        "n_trees": 50,
        "alpha": 0.5,
        "name": "abc",
        "genie3.x": [1, 2],
    }
    with pytest.raises(UsageError, match="NAME=VALUE"):
        parse_params(["n_trees"])
    with pytest.raises(UsageError, match="twice"):
        parse_params(["a=1", "a=2"])


def test_missing_help_names_undocumented_flags() -> None:
    assert missing_help(_parser()) == []
    missing = missing_help(_parser(with_help=False))
    assert "tool run" in missing and "tool run --out" in missing


def test_data_dir(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCPRINT_DATA_DIR", raising=False)
    assert use_data_dir(None) is None and "SCPRINT_DATA_DIR" not in os.environ
    use_data_dir(str(tmp_path))
    assert os.environ["SCPRINT_DATA_DIR"] == str(tmp_path.resolve())
    with pytest.raises(UsageError, match="not a folder"):
        use_data_dir(str(tmp_path / "missing"))


@pytest.mark.parametrize("error", [ValueError("bad value"), KeyError("gene"), TypeError("t")])
def test_only_usage_errors_exit_2_any_other_exception_exits_1(
    capsys: pytest.CaptureFixture[str], error: Exception
) -> None:
    """A ValueError, KeyError or TypeError from inside a command is a failure (1), not the
    user's mistake (2): only UsageError (and types a caller declares) exit 2."""

    def handler(args: argparse.Namespace) -> int:
        raise error

    assert run_cli("tool", _parser(), handler, ["run", "--out", "x"]) == 1
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and line.startswith(f"tool: error: {type(error).__name__}: ")
    assert "'gene'" not in line  # a KeyError's message without repr quotes
    assert (
        run_cli("tool", _parser(), handler, ["run", "--out", "x"], usage_errors=(type(error),)) == 2
    )
    assert capsys.readouterr().err.count("\n") == 1  # callers' declared usage errors: still 2


def test_an_interrupt_is_one_line_with_exit_130(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    assert run_cli("tool", _parser(), handler, ["run", "--out", "x"]) == 130
    assert capsys.readouterr().err == "tool: interrupted\n"
