"""Sphinx configuration for the livecall documentation."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

import livecall

project = "livecall"
author = "livecall contributors"
copyright = "livecall contributors"
version = release = livecall.__version__

extensions = ["sphinx.ext.autodoc", "livecall_reference"]

# Examples are executed by tests/test_docs.py, which only knows ``code-block``s:
# a bare ``::`` block is plain text, never a code example in disguise.
highlight_language = "none"
autodoc_member_order = "bysource"
autodoc_typehints = "signature"

html_theme = "alabaster"
html_title = f"livecall {release}"
html_theme_options = {
    "description": "Watch live calls and voice conversations as they happen",
    "fixed_sidebar": True,
}
html_static_path = []
exclude_patterns = ["_build"]
