"""Allow ``python -m <package>`` as an alias of the CLI."""

from .cli import app

app()
