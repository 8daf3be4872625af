"""Allow ``python -m <package>`` as an alias of the CLI."""

from .cli import main

main()
