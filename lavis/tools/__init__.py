"""Command-line tools run with `python -m lavis.tools.<name>`."""
