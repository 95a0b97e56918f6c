"""livecall's version, in a module of its own at the bottom of the layers.

The package exports it as ``livecall.__version__``; what sits below the
package (a recording's header) reads it here, so it is the running code's
version, not whatever an install once recorded in its metadata.
"""

__version__ = "0.1.0"
