"""Errors that carry a message meant for the user (the CLI prints them in one line, no traceback)."""


class BwdpError(Exception):
    """Base class: bad input, bad configuration, unreadable file. The message names the file, topic or key."""


class DataError(BwdpError):
    """A dataset, image, video, bag or intrinsics file that cannot be used."""


class CheckpointError(BwdpError):
    """A checkpoint that is missing, corrupt or does not match the networks."""


class ConfigError(BwdpError):
    """A configuration value that is missing, unknown or out of range."""
