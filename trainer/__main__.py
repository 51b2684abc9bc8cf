"""`python -m trainer ...`: the entry point of the pipeline CLI (nanolab.cli)."""

from nanolab.cli import main

main()
