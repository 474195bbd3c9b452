"""The command line: every user mistake exits 2 with one line, before anything is computed;
the shared conventions of grnndata.cli (common flags anywhere, --param NAME=VALUE, help texts)."""

from __future__ import annotations

import argparse

import pytest

from bengrn.cli import build_parser, main
from grnndata.cli import missing_help

RUN = ["run", "--method", "pearson", "--task", "beeline-synthetic"]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", "--method", "pearson", "--task", "beeline-synthetik"],
            "unknown task 'beeline-synthetik'",
        ),
        (["run", "--method", "pearsn", "--task", "beeline-synthetic"], "unknown method 'pearsn'"),
        (
            ["run", "--method", "no_such_module_xyz:infer", "--task", "beeline-synthetic"],
            "cannot import module",
        ),
        ([*RUN, "--param", "pearson.regulatorz=['a']"], "has no parameter 'regulatorz'"),
        ([*RUN, "--param", "regulatorz=['a']"], "has no parameter 'regulatorz'"),
        ([*RUN, "--param", "genie3.n_trees=5"], "'genie3' is not among the methods run"),
        ([*RUN, "--param", "n_trees"], "expects NAME=VALUE"),
        ([*RUN, "--method", "random", "--param", "seed=1"], "say which one"),
        ([*RUN, "--task-option", "netwrks=('dyn-LL',)"], "netwrks"),
        ([*RUN, "--task-option", "beeline-synthetic.networks=('dyn-XX',)"], "dyn-XX"),
        ([*RUN, "--task-option", "literature.n_genes=5"], "'literature' is not among the tasks"),
        ([*RUN, "--truth", "edges.tsv"], "--truth is for --task custom"),
        ([*RUN, "--data-dir", "/nonexistent/data"], "--data-dir '/nonexistent/data' is not a"),
        ([*RUN, "--outt", "x"], "did you mean --out?"),
        ([*RUN, "--timeout", "0"], "--timeout must be a positive"),
        ([*RUN, "--input", "/nonexistent/x.h5ad"], "--input '/nonexistent/x.h5ad' does not exist"),
        ([*RUN, "--scheduler", "local:0"], "--scheduler local:N needs a worker count N >= 1"),
        # regression: values of the wrong type raised raw TypeErrors inside the methods
        ([*RUN, "--param", "top_k='ten'"], "top_k='ten' (str) is not int or None"),
        (
            ["run", "--method", "random", "--task", "beeline-synthetic", "--param", "seed=0.5"],
            "method 'random': seed=0.5 (float) is not int (default 0)",
        ),
        (
            [*RUN, "--task-option", "networks='dyn-LL'"],
            "networks='dyn-LL' (str) is not a list of str or None",
        ),
        ([*RUN, "--task-option", "kind=3"], "kind=3 (int) is not str"),
        (
            ["run", "--method", "file:/nonexistent/net.h5ad", "--task", "beeline-synthetic"],
            "does not exist",
        ),
    ],
)
def test_user_mistakes_exit_2_with_one_line(argv, message, tmp_path, capsys):
    # regression: these ended in tracebacks (or, for parameters, in failures after inference)
    out = tmp_path / "results"
    assert main([*argv, "--out", str(out)]) == 2
    assert message in _error_line(capsys)
    assert not out.exists()  # nothing was computed or written


def test_output_path_that_is_a_file_exits_2(tmp_path, capsys):
    path = tmp_path / "results.txt"
    path.write_text("the user's notes\n")
    assert main([*RUN, "--out", str(path)]) == 2
    assert "is a file" in _error_line(capsys)
    assert path.read_text() == "the user's notes\n"


def test_output_folder_of_other_files_exits_2_and_is_left_alone(tmp_path, capsys):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("draft")
    assert main([*RUN, "--out", str(folder)]) == 2
    assert "not a bengrn results folder" in _error_line(capsys)
    assert sorted(p.name for p in folder.iterdir()) == ["chapter1.tex"]


def test_report_of_a_missing_folder_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "not a bengrn results folder" in _error_line(capsys)
    assert main(["report", "--out", str(tmp_path / "nowhere")]) == 2
    assert "not a bengrn results folder" in _error_line(capsys)
    assert main(["report"]) == 2
    assert "needs the results folder" in _error_line(capsys)


def test_debug_adds_the_traceback(tmp_path, capsys):
    argv = ["run", "--method", "pearson", "--task", "nope", "--out", str(tmp_path / "o")]
    assert main(["--debug", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("bengrn: error: unknown task 'nope'")
    assert main([*argv, "--debug"]) == 2  # after the subcommand too
    assert "Traceback" in capsys.readouterr().err


def test_the_old_colon_param_form_still_works_with_a_deprecation_warning(tmp_path, capsys, caplog):
    out = tmp_path / "results"
    assert main([*RUN, "--param", "pearson:regulatorz=['a']", "--out", str(out)]) == 2
    assert "has no parameter 'regulatorz'" in _error_line(capsys)  # read as pearson.regulatorz
    assert "deprecated; write --param pearson.regulatorz=['a']" in caplog.text


@pytest.mark.parametrize("where", ["before", "after"])
def test_common_flags_go_before_or_after_the_subcommand(where, capsys):
    argv = ["list", "-q"] if where == "after" else ["-q", "list"]
    assert main(argv) == 0
    assert "genie3" in capsys.readouterr().out
    args = build_parser().parse_args(
        ["-v", "run", "--method", "m", "--task", "t", "--out", "o", "-v"]
    )
    assert args.verbose >= 1


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def test_every_subcommand_documents_every_flag(capsys):
    parser = build_parser()
    assert missing_help(parser) == []
    subcommands = _subparsers(parser)
    assert set(subcommands) == {"run", "report", "list"}
    for name, sub in subcommands.items():
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in text, (name, flag)
    assert {"--out", "--data-dir", "--param", "--verbose", "--quiet", "--debug"} <= {
        flag for action in subcommands["run"]._actions for flag in action.option_strings
    }


def test_a_failure_that_is_not_a_usage_mistake_exits_1_with_one_line(tmp_path, capsys):
    # the report cannot replace a folder that holds its table's name: not a command-line mistake
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    (results / "results.csv").mkdir()
    assert main(["report", str(results)]) == 1
    err = _error_line(capsys)
    assert err.startswith("bengrn: error: OutputExistsError:") and "--debug" in err
    assert main(["report", str(results), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err
    assert (results / "results.csv").is_dir()  # left as it was
