"""How every command ends on a mistake the user can fix: one line on stderr, a fixed exit code.

``with user_errors():`` around a command's work turns a ``UserError`` into ``error: <message>``
and exit 2, and Ctrl-C into ``interrupted`` and exit 130, with no traceback. Used by the CLI
group, the tools in ``tools/`` and ``python -m trainer.aot``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from nanocore.errors import UserError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


@contextmanager
def user_errors(interrupted: str = "interrupted") -> Iterator[None]:
    """Run the body; a UserError exits 2 and a KeyboardInterrupt exits 130, each in one line.

    ``interrupted`` is the line printed on Ctrl-C (some commands say ``error: interrupted``)."""
    try:
        yield
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        click.echo(interrupted, err=True)
        sys.exit(EXIT_INTERRUPTED)
