"""streamguard: perceptual-hash matching of live video against blocklists."""

__version__ = "0.1.0"
