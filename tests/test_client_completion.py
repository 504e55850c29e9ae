"""``tes completion bash|zsh``: the script completes commands, options and option values in
a real bash (and a real zsh where one is installed)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tes_core.client.cli import main

BASH = shutil.which("bash")
ZSH = shutil.which("zsh")


def completion(shell: str) -> str:
    """What ``tes completion SHELL`` prints (the installed console script)."""
    done = subprocess.run([sys.executable, "-m", "tes_core.client.cli", "completion", shell],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory) -> str:
    if BASH is None:
        pytest.skip("bash is not installed")
    path = tmp_path_factory.mktemp("completion") / "tes.bash"
    path.write_text(completion("bash"))
    return str(path)


def complete(script: str, line: str, cwd: str | None = None) -> list[str]:
    """The completions bash offers for ``line`` (the word being completed is its last,
    empty when ``line`` ends with a space), as the shell's completion machinery calls the
    function registered for ``tes``."""
    words = line.split(" ")
    program = f"""
source {script}
COMP_WORDS=({' '.join(_quote(w) for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE={_quote(line)}
COMP_POINT={len(line)}
spec=$(complete -p tes)
function=${{spec##*-F }}; function=${{function%% *}}
"$function" tes "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run([BASH, "--norc", "--noprofile", "-c", program], capture_output=True,
                          text=True, timeout=30, check=False, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def test_completes_the_commands(bash_script):
    assert complete(bash_script, "tes ") == [
        "run", "submit", "list", "get", "cancel", "wait", "watch", "logs", "info", "completion"]
    assert complete(bash_script, "tes l") == ["list", "logs"]
    assert complete(bash_script, "tes --url http://x ca") == ["cancel"]


def test_completes_each_commands_options(bash_script):
    assert complete(bash_script, "tes list --na") == ["--name-prefix"]
    assert set(complete(bash_script, "tes run --i")) == {"--image", "--input"}
    assert complete(bash_script, "tes logs --fo") == ["--follow"]
    assert "--all" not in complete(bash_script, "tes get --")
    assert complete(bash_script, "tes --to") == ["--token"]


def test_completes_option_values(bash_script):
    assert complete(bash_script, "tes list --view ") == ["MINIMAL", "BASIC", "FULL"]
    assert complete(bash_script, "tes get -o y") == ["yaml"]
    assert complete(bash_script, "tes list --state EX") == ["EXECUTOR_ERROR"]
    assert complete(bash_script, "tes completion ") == ["bash", "zsh"]
    # A value nobody can guess completes to nothing (bash then offers file names).
    assert complete(bash_script, "tes run --name ") == []


def test_completes_file_names_where_a_file_is_asked_for(bash_script, tmp_path):
    (tmp_path / "task-one.json").write_text("{}")
    (tmp_path / "task-two.yaml").write_text("{}")
    assert sorted(complete(bash_script, "tes submit task-", cwd=str(tmp_path))) == [
        "task-one.json", "task-two.yaml"]
    assert complete(bash_script, "tes --config task-t", cwd=str(tmp_path)) == ["task-two.yaml"]
    assert complete(bash_script, "tes get task-", cwd=str(tmp_path)) == []


def test_zsh_loads_the_script_and_registers_tes(tmp_path):
    if ZSH is None:
        pytest.skip("zsh is not installed")
    path = tmp_path / "tes.zsh"
    path.write_text(completion("zsh"))
    # The function zsh calls (through bashcompinit, with 0-based arrays) offers the
    # candidates; zsh itself then keeps those matching what was typed.
    program = f"""
source {path} || exit 1
print -r -- "registered: $_comps[tes]"
setopt ksharrays
COMP_WORDS=(tes ""); COMP_CWORD=1; _tes_complete; print -r -- "commands: ${{COMPREPLY[*]}}"
COMP_WORDS=(tes list --view ""); COMP_CWORD=3; _tes_complete
print -r -- "views: ${{COMPREPLY[*]}}"
"""
    done = subprocess.run([ZSH, "-f", "-c", program], capture_output=True, text=True,
                          timeout=30, check=False,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] != "registered: ", "zsh registered no completion for tes"
    assert lines[1].split()[1:] == ["run", "submit", "list", "get", "cancel", "wait", "watch",
                                    "logs", "info", "completion"]
    assert lines[2] == "views: MINIMAL BASIC FULL"


def test_an_unknown_shell_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["completion", "fish"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fish'" in capsys.readouterr().err


def test_completion_needs_no_server(capsys, monkeypatch):
    monkeypatch.setenv("TES_URL", "http://127.0.0.1:9")  # nothing listens there
    assert main(["completion", "bash"]) == 0
    assert "complete -o default -F _tes_complete tes" in capsys.readouterr().out
