"""Watch live phone calls and AI voice conversations as they happen."""
__version__ = "0.1.0"
