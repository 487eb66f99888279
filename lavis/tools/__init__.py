"""Command-line tools that work on trained runs (`python -m lavis.tools.<name>`)."""
