"""Sphinx configuration for the livecall documentation."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

import livecall

project = "livecall"
author = "livecall contributors"
copyright = "livecall contributors"
version = release = livecall.__version__

extensions = ["sphinx.ext.autodoc", "sphinx_copybutton", "livecall_reference"]

# Examples are executed by tests/test_docs.py, which only knows ``code-block``s:
# a bare ``::`` block is plain text, never a code example in disguise.
highlight_language = "none"
autodoc_member_order = "bysource"
autodoc_typehints = "signature"

# Furo: code blocks as wide as the page allows, on a phone too.
html_theme = "furo"
html_title = f"livecall {release}"
html_static_path = []

# The copy button copies commands without their ``$`` prompt, and no output lines.
copybutton_prompt_text = "$ "
copybutton_only_copy_prompt_lines = True
copybutton_exclude = ".linenos, .gp, .go"
exclude_patterns = ["_build"]
