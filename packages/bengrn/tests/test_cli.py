"""The command line: every user mistake exits 2 with one line, before anything is computed."""

from __future__ import annotations

import pytest

from bengrn.cli import UsageError, main

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
        ([*RUN, "--param", "pearson:regulatorz=['a']"], "has no parameter 'regulatorz'"),
        ([*RUN, "--param", "genie3:n_trees=5"], "not among the methods run"),
        ([*RUN, "--param", "n_trees=5"], "NAME:KEY=VALUE"),
        ([*RUN, "--task-option", "beeline-synthetic:netwrks=('dyn-LL',)"], "netwrks"),
        ([*RUN, "--task-option", "beeline-synthetic:networks=('dyn-XX',)"], "dyn-XX"),
        ([*RUN, "--task-option", "literature:n_genes=5"], "not among the --task values"),
        ([*RUN, "--timeout", "0"], "--timeout must be a positive"),
        ([*RUN, "--input", "/nonexistent/x.h5ad"], "--input '/nonexistent/x.h5ad' does not exist"),
        ([*RUN, "--scheduler", "local:0"], "--scheduler local:N needs a worker count N >= 1"),
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


def test_debug_shows_the_exception_instead(tmp_path):
    with pytest.raises(UsageError, match="unknown task"):
        main(
            [
                "--debug",
                "run",
                "--method",
                "pearson",
                "--task",
                "nope",
                "--out",
                str(tmp_path / "o"),
            ]
        )
