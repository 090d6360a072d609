"""provision: declarative identity provisioning."""

__version__ = "0.1.0"
