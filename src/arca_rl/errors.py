"""The error every bad input of arca-rl raises: `ConfigError`.

Its own small module, importing nothing, so that the public modules that check input (`arca_rl.rundir`
for a run folder's files, the config package for a YAML config, the `arca` command line) share one
error class without importing each other or a private module. The CLI prints it as one line and exits
with status 2.
"""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """An invalid configuration; the message starts with the offending key path."""
