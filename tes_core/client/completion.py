"""Shell completion for ``tes``: a bash (or zsh) script built from the command's own parser.

``tes completion bash`` prints a script that completes the commands, each command's
options, the values of options with a fixed set (``--view``, ``--format``, ``--state``,
...) and file names where a file is asked for (``submit``, ``--config``). It is built
from the argparse parser, so a new command or flag completes without editing it, and it
runs no Python at completion time (a keystroke costs no interpreter start). zsh loads the
same script through its ``bashcompinit`` layer.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field

from ..states import State

SHELLS = ("bash", "zsh")
FILE_OPTIONS = ("--config",)
"""Options whose value is a file name."""
FILE_POSITIONALS = {"submit"}
"""Commands whose positional argument is a file name."""
TASK_STATES = tuple(State)
"""The values completed after ``--state``."""


@dataclass
class CommandWords:
    """What one command (or the top level, named ``""``) accepts."""

    options: list[str] = field(default_factory=list)
    valued: list[str] = field(default_factory=list)
    """Options that take a value (the next word is not a command or an option)."""
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Each valued option's possible values."""
    arguments: tuple[str, ...] = ()
    """The possible values of the command's positional argument, when it has a fixed set."""


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of ``parser``'s program for ``shell`` (``bash`` or ``zsh``)."""
    if shell not in SHELLS:
        raise ValueError(f"shell must be one of {', '.join(SHELLS)}, got {shell!r}")
    bash = _bash(parser.prog, _words(parser))
    if shell == "zsh":
        return ("# zsh: load bash-style completion, then the bash script\n"
                "autoload -U +X compinit && compinit\n"
                "autoload -U +X bashcompinit && bashcompinit\n" + bash)
    return bash


def _words(parser: argparse.ArgumentParser) -> dict[str, CommandWords]:
    """Per command (``""``: before any command), its options, valued options and choices."""
    commands = {"": _command_words(parser)}
    for action in parser._actions:  # argparse has no public way to walk subcommands
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                commands[name] = _command_words(sub)
    return commands


def _command_words(parser: argparse.ArgumentParser) -> CommandWords:
    words = CommandWords()
    for action in parser._actions:
        if not action.option_strings and action.choices and not isinstance(
                action, argparse._SubParsersAction):
            words.arguments = tuple(map(str, action.choices))
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        words.options += action.option_strings
        if action.nargs != 0:
            words.valued += action.option_strings
            values = tuple(action.choices) if action.choices else (
                TASK_STATES if "--state" in action.option_strings else ())
            for option in action.option_strings:
                if values:
                    words.choices[option] = tuple(map(str, values))
    return words


def _bash(prog: str, commands: dict[str, CommandWords]) -> str:
    function = f"_{prog}_complete"
    names = " ".join(name for name in commands if name)
    valued = " ".join(sorted({o for words in commands.values() for o in words.valued}))
    choice_cases = option_cases = ""
    for name, words in commands.items():
        key = name or "-"
        for option, values in words.choices.items():
            choice_cases += (f"        {shlex.quote(f'{key}:{option}')}) COMPREPLY=($(compgen"
                             f" -W {shlex.quote(' '.join(values))} -- \"$cur\")); return;;\n")
        options = shlex.quote(" ".join(words.options))
        arguments = shlex.quote(" ".join(words.arguments))
        option_cases += f"        {shlex.quote(key)}) opts={options} args={arguments};;\n"
    files = " | ".join(f"*:{option}" for option in FILE_OPTIONS)
    file_commands = " ".join(sorted(FILE_POSITIONALS))
    return f"""# {prog} shell completion: eval "$({prog} completion bash)" (e.g. in ~/.bashrc)
{function}() {{
    local cur prev cmd="" opts args word i skip=0
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        if ((skip)); then skip=0; continue; fi
        case " {valued} " in *" $word "*) skip=1; continue;; esac
        case " {names} " in *" $word "*) cmd="$word"; break;; esac
    done
    case "${{cmd:--}}:$prev" in
{choice_cases}        {files}) COMPREPLY=($(compgen -f -- "$cur")); return;;
    esac
    case " {valued} " in *" $prev "*) COMPREPLY=(); return;; esac
    case "${{cmd:--}}" in
{option_cases}    esac
    if [[ -z "$cmd" && "$cur" != -* ]]; then
        COMPREPLY=($(compgen -W "{names}" -- "$cur"))
    elif [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [[ -n "$args" ]]; then
        COMPREPLY=($(compgen -W "$args" -- "$cur"))
    elif [[ " {file_commands} " == *" $cmd "* ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    else
        COMPREPLY=()
    fi
}}
complete -o default -F {function} {prog}
"""
