"""The programs an exec tool's command may name, and how each runs code given on its command
line: wrappers that run another program (:data:`WRAPPERS`), shells (:data:`SHELLS`), language
runtimes (:data:`INTERPRETERS`), and the shell builtins and reserved words a ``shell: true``
script is read with.

Data only; :mod:`._exec_safety` follows a command through these tables.
"""

from __future__ import annotations

from typing import Final

import attrs

__all__ = [
    "CODE_BUILTINS",
    "FISH_CODE_OPTIONS",
    "INTERPRETERS",
    "NAME_BUILTINS",
    "RESERVED",
    "SHELLS",
    "SHELL_VALUE_OPTIONS",
    "WRAPPERS",
    "Interpreter",
    "Wrapper",
]


# -- the tables ------------------------------------------------------------------------------


@attrs.frozen
class Wrapper:
    """A program that runs another program given in its arguments.

    Attributes:
        value_options: options followed by a value (``-u NAME``; ``--unset=NAME`` and
            ``-uNAME`` are understood too).
        operands: fixed operands before the program (``timeout``'s duration, ``chroot``'s
            root).
        assignments: ``NAME=value`` words may come before the program (``env``).
        code_options: options whose value is a shell command line (``su -c``, ``env -S``).
        shell_options: options that make the remaining arguments one shell command line
            (``sudo -s``).
        rest_is_shell: the remaining arguments are always joined and run by a shell
            (``watch``, ``ssh``, ``parallel``).
        applet: the first operand names the program (``busybox sh``).
    """

    value_options: frozenset[str] = frozenset()
    operands: int = 0
    assignments: bool = False
    code_options: frozenset[str] = frozenset()
    shell_options: frozenset[str] = frozenset()
    rest_is_shell: bool = False
    applet: bool = False


def _options(*names: str) -> frozenset[str]:
    return frozenset(names)


WRAPPERS: Final[dict[str, Wrapper]] = {
    "env": Wrapper(
        value_options=_options("-u", "--unset", "-C", "--chdir", "-a", "--argv0"),
        assignments=True,
        code_options=_options("-S", "--split-string"),
    ),
    "timeout": Wrapper(value_options=_options("-s", "--signal", "-k", "--kill-after"), operands=1),
    "nice": Wrapper(value_options=_options("-n", "--adjustment")),
    "nohup": Wrapper(),
    "stdbuf": Wrapper(value_options=_options("-i", "-o", "-e", "--input", "--output", "--error")),
    "xargs": Wrapper(
        value_options=_options(
            "-a",
            "--arg-file",
            "-d",
            "--delimiter",
            "-E",
            "-e",
            "--eof",
            "-I",
            "--replace",
            "-L",
            "--max-lines",
            "-l",
            "-n",
            "--max-args",
            "-P",
            "--max-procs",
            "-s",
            "--max-chars",
            "--process-slot-var",
        )
    ),
    "sudo": Wrapper(
        value_options=_options(
            "-u",
            "--user",
            "-g",
            "--group",
            "-C",
            "--close-from",
            "-D",
            "--chdir",
            "-h",
            "--host",
            "-p",
            "--prompt",
            "-r",
            "--role",
            "-t",
            "--type",
            "-T",
            "--command-timeout",
            "-U",
            "--other-user",
            "-R",
            "--chroot",
        ),
        shell_options=_options("-s", "--shell", "-i", "--login"),
    ),
    "doas": Wrapper(value_options=_options("-u", "-C")),
    "su": Wrapper(
        value_options=_options("-g", "--group", "-G", "--supp-group", "-s", "--shell"),
        code_options=_options("-c", "--command", "--session-command"),
        operands=1,
    ),
    "runuser": Wrapper(
        value_options=_options("-u", "--user", "-g", "--group", "-G", "-s", "--shell"),
        code_options=_options("-c", "--command", "--session-command"),
    ),
    "command": Wrapper(),
    "builtin": Wrapper(),
    "exec": Wrapper(value_options=_options("-a")),
    "time": Wrapper(value_options=_options("-f", "--format", "-o", "--output")),
    "setsid": Wrapper(),
    "ionice": Wrapper(value_options=_options("-c", "--class", "-n", "--classdata", "-p", "--pid")),
    "chrt": Wrapper(value_options=_options("-T", "-P", "-D"), operands=1),
    "taskset": Wrapper(operands=1),
    "chroot": Wrapper(value_options=_options("--userspec", "--groups"), operands=1),
    "unshare": Wrapper(value_options=_options("-S", "--setuid", "-G", "--setgid", "-R", "-w")),
    "nsenter": Wrapper(
        value_options=_options("-t", "--target", "-S", "--setuid", "-G", "--setgid", "-r", "-w")
    ),
    "flock": Wrapper(
        value_options=_options("-w", "--timeout", "-E", "--conflict-exit-code"),
        code_options=_options("-c", "--command"),
        operands=1,
    ),
    "script": Wrapper(
        value_options=_options("-E", "--echo", "-T", "-t"), code_options=_options("-c", "--command")
    ),
    "watch": Wrapper(value_options=_options("-n", "--interval", "-d"), rest_is_shell=True),
    "ssh": Wrapper(
        value_options=_options(
            "-B",
            "-b",
            "-c",
            "-D",
            "-E",
            "-e",
            "-F",
            "-I",
            "-i",
            "-J",
            "-L",
            "-l",
            "-m",
            "-O",
            "-o",
            "-p",
            "-Q",
            "-R",
            "-S",
            "-W",
            "-w",
        ),
        operands=1,
        rest_is_shell=True,
    ),
    "parallel": Wrapper(rest_is_shell=True),
    "busybox": Wrapper(applet=True),
    "toybox": Wrapper(applet=True),
    "strace": Wrapper(value_options=_options("-e", "-o", "-p", "-s", "-u", "-E", "-P", "-a")),
    "ltrace": Wrapper(value_options=_options("-e", "-o", "-p", "-s", "-u", "-a", "-n")),
    "firejail": Wrapper(),
    "proot": Wrapper(value_options=_options("-r", "-b", "-w", "-q")),
}
"""Programs that run another program, by name (see :class:`Wrapper`)."""

SHELLS: Final = frozenset(
    {
        "sh",
        "bash",
        "rbash",
        "dash",
        "zsh",
        "ksh",
        "mksh",
        "pdksh",
        "ash",
        "yash",
        "fish",
        "csh",
        "tcsh",
        "posh",
        "hush",
        "oksh",
        "loksh",
    }
)
"""Shells: ``-c`` (alone or in a cluster such as ``-ec``) makes the first operand a script."""
SHELL_VALUE_OPTIONS: Final = _options("-o", "+o", "-O", "+O", "--rcfile", "--init-file")
# fish: -C/--init-command run code too (for other shells -C is a flag: noclobber)
FISH_CODE_OPTIONS: Final = _options("-C", "--init-command")


@attrs.frozen
class Interpreter:
    """A language runtime that can run code given on its command line.

    Attributes:
        code_options: options whose value is code (``-c``, ``-e``, ``--eval``).
        value_options: other options followed by a value.
        module_options: options whose value names code to load (``-m``, ``-r``, ``-M``).
        clusters: single-letter options may be bundled (``-ne``, ``-Ic``) and a value may be
            attached (``-e'print 1'``).
        code_operand: the first operand is the program text (awk, sed) unless a code option
            or a ``file_options`` option gave the program.
        file_options: options naming a program file (``awk -f``, ``sed -f``).
        code_ends_options: the words after the inline code are its arguments, not options
            (``python -c CODE ARG…``).
        hint: how to pass a value as an argument instead.
    """

    code_options: frozenset[str] = frozenset()
    value_options: frozenset[str] = frozenset()
    module_options: frozenset[str] = frozenset()
    clusters: bool = False
    code_operand: bool = False
    file_options: frozenset[str] = frozenset()
    code_ends_options: bool = False
    hint: str = ""


_AWK: Final = Interpreter(
    code_options=_options("-e", "--source"),
    value_options=_options("-F", "--field-separator", "-v", "--assign", "-W"),
    module_options=_options("-i", "--include", "-l", "--load"),
    code_operand=True,
    file_options=_options("-f", "--file"),
    hint="awk -v value={{x}} '{ print value }' (or pass it as a file operand)",
)
INTERPRETERS: Final[dict[str, Interpreter]] = {
    "python": Interpreter(
        code_options=_options("-c"),
        value_options=_options("-W", "-X", "--check-hash-based-pycs"),
        module_options=_options("-m"),
        clusters=True,
        code_ends_options=True,
        hint="python -c 'import sys; print(sys.argv[1])' {{x}}",
    ),
    "pypy": Interpreter(
        code_options=_options("-c"),
        value_options=_options("-W", "-X"),
        module_options=_options("-m"),
        clusters=True,
        code_ends_options=True,
        hint="pypy -c 'import sys; print(sys.argv[1])' {{x}}",
    ),
    "node": Interpreter(
        code_options=_options("-e", "--eval", "-p", "--print"),
        value_options=_options("--input-type", "-C", "--conditions", "--title"),
        module_options=_options("-r", "--require", "--import", "--loader", "--experimental-loader"),
        clusters=True,
        hint="node -e 'console.log(process.argv[1])' {{x}}",
    ),
    "perl": Interpreter(
        code_options=_options("-e", "-E"),
        # NOTE: -l, -0, -i, -x and -C take an *optional* attached value, so in a bundle like
        # -lne they are flags; these always take one.
        value_options=_options("-I", "-d", "-D", "-F"),
        module_options=_options("-M", "-m"),
        clusters=True,
        hint="perl -e 'print $ARGV[0]' {{x}}",
    ),
    "ruby": Interpreter(
        code_options=_options("-e"),
        value_options=_options("-I", "-C", "-E", "-F", "-K"),
        module_options=_options("-r"),
        clusters=True,
        hint="ruby -e 'puts ARGV[0]' {{x}}",
    ),
    "php": Interpreter(
        code_options=_options("-r", "-B", "-R", "-E"),
        value_options=_options("-c", "-d", "-z"),
        module_options=_options("-f", "-F"),
        hint="php -r 'echo $argv[1];' {{x}}",
    ),
    "lua": Interpreter(
        code_options=_options("-e"),
        module_options=_options("-l"),
        hint="lua -e 'print(arg[1])' {{x}}",
    ),
    "luajit": Interpreter(
        code_options=_options("-e"),
        module_options=_options("-l"),
        hint="luajit -e 'print(arg[1])' {{x}}",
    ),
    "osascript": Interpreter(
        code_options=_options("-e"),
        value_options=_options("-l", "-s"),
        hint="osascript -e 'on run argv' -e 'return item 1 of argv' -e 'end run' {{x}}",
    ),
    "rscript": Interpreter(
        code_options=_options("-e"),
        hint="Rscript -e 'cat(commandArgs(TRUE)[1])' {{x}}",
    ),
    "julia": Interpreter(
        code_options=_options("-e", "--eval", "-E", "--print"),
        module_options=_options("-L", "--load"),
        hint="julia -e 'println(ARGS[1])' {{x}}",
    ),
    "pwsh": Interpreter(
        code_options=_options("-c", "-command", "-encodedcommand", "-ec", "-e"),
        hint="pass the value as an argument of a script file",
    ),
    "powershell": Interpreter(
        code_options=_options("-c", "-command", "-encodedcommand", "-ec", "-e"),
        hint="pass the value as an argument of a script file",
    ),
    "awk": _AWK,
    "gawk": _AWK,
    "mawk": _AWK,
    "nawk": _AWK,
    "sed": Interpreter(
        code_options=_options("-e", "--expression"),
        value_options=_options("-l", "--line-length"),
        code_operand=True,
        file_options=_options("-f", "--file"),
        hint="don't build a sed script from a value; match it in a program that takes it as "
        "an argument",
    ),
}
"""Language runtimes, by name (``python3.12`` is ``python``; see :class:`Interpreter`)."""

# Shell builtins whose arguments are code...
CODE_BUILTINS: Final = frozenset(
    {"eval", "trap", "source", ".", "let", "alias", "bind", "fc", "enable", "complete", "compgen"}
)
# ... and builtins whose arguments name variables (bash evaluates array subscripts in a name:
# declare 'a[$(cmd)]=1' runs cmd), so a placeholder may only be the value after "NAME=".
NAME_BUILTINS: Final = frozenset(
    {
        "declare",
        "typeset",
        "local",
        "export",
        "readonly",
        "unset",
        "read",
        "mapfile",
        "readarray",
        "getopts",
    }
)
RESERVED: Final = frozenset(
    {
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "do",
        "done",
        "while",
        "until",
        "!",
        "{",
        "}",
        "time",
        "coproc",
    }
)
