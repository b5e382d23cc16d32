"""The one error of the settings: it names the setting and what is wrong with it."""

from streamguard.errors import StreamguardError


class ConfigError(StreamguardError):
    """The configuration is invalid; the message names the setting."""
