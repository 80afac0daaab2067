"""`python -m featurehub` runs the CLI."""

from featurehub.cli import app

app()
