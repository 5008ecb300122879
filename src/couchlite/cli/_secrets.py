"""Where the CLI gets a secret: an environment variable, a hidden prompt, or a line of stdin.

Theory of operation
-------------------
Secrets are never command-line arguments (other users can read those in the process list).
Each one comes from, in order:

1. an environment variable, when the command names one (``--password-env NAME``; the key
   store's ``$COUCHLITE_KEYSTORE_PASSPHRASE`` is read by the library itself);
2. a hidden prompt, when stdin is a terminal (confirmed when it protects something new);
3. otherwise one line of stdin, so that scripts can pipe it in
   (``printf '%s\\n' "$PW" | couchlite identity export ...``); several secrets are read one line
   each, in the order the command needs them.

When none of these gives a secret (stdin at end of file, an empty line, an unset variable), the
command fails with one line on stderr and exit status 1. ``getpass`` is only ever used on a
terminal: without one it warns (``GetPassWarning``) and echoes what is typed.
"""

from __future__ import annotations

import os
import sys

import click


class SecretUnavailable(click.ClickException):
    """No secret could be had from any of the sources; ``main`` prints it as one line."""


def stdin_is_a_terminal() -> bool:
    """Whether prompts can be shown (and answered with echo off)."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):  # closed or replaced stdin
        return False


def read_secret(
    what: str,
    *,
    env_name: str | None = None,
    confirm: bool = False,
    hint: str,
) -> str:
    """The secret described by ``what`` (e.g. ``"export password"``), from the first source
    that has one (see the module docstring). ``hint`` says how else to give it, for the error.
    """
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise SecretUnavailable(f"no {what}: ${env_name} is not set or empty")
        return value
    if stdin_is_a_terminal():
        prompt = what[:1].upper() + what[1:]
        return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))
    line = sys.stdin.readline() if sys.stdin is not None else ""
    value = line.removesuffix("\n").removesuffix("\r")
    if not value:
        raise SecretUnavailable(
            f"no {what}: stdin is not a terminal and gave no line to read it from; {hint}"
        )
    return value


__all__ = ["SecretUnavailable", "read_secret", "stdin_is_a_terminal"]
