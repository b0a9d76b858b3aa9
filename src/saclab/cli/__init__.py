"""The `saclab` command (`saclab.cli.main:main`); nothing imports it."""
