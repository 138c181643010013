"""Every command-line tool ends the same way on a user's mistake, on Ctrl-C and on a bug."""

import pytest

from m5l_core.cli_errors import RERUN_TO_CONTINUE, run_cli
from m5l_core.config import ConfigError


def test_the_body_exit_status_passes_through(capsys):
    assert run_cli(lambda: 0, (ConfigError,)) == 0
    assert run_cli(lambda: 3, (ConfigError,)) == 3
    assert capsys.readouterr().err == ""


def test_a_user_error_is_one_line_naming_what_was_wrong(capsys):
    def body() -> int:
        raise ConfigError("track.yaml: search.top_k: must be at least 1")

    assert run_cli(body, (ConfigError,)) == 2
    assert capsys.readouterr().err == "error: track.yaml: search.top_k: must be at least 1\n"


def test_a_missing_file_is_named_first(tmp_path, capsys):
    missing = tmp_path / "nowhere.txt"
    assert run_cli(lambda: len(missing.read_text()), (OSError,)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {missing}: ") and "No such file" in err and "Errno" not in err


def test_ctrl_c_says_what_was_kept(capsys):
    def body() -> int:
        raise KeyboardInterrupt

    assert run_cli(body, (ConfigError,), RERUN_TO_CONTINUE) == 130
    assert capsys.readouterr().err == RERUN_TO_CONTINUE + "\n"


def test_a_bug_keeps_its_traceback():
    def body() -> int:
        raise ZeroDivisionError("a bug, not the user's mistake")

    with pytest.raises(ZeroDivisionError):
        run_cli(body, (ConfigError, OSError))
