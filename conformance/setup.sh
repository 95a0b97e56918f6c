#!/usr/bin/env bash
# Build a Python 3 venv that runs the Autobahn|Testsuite fuzzing server.
#
# Usage: conformance/setup.sh DIR   (make conformance uses conformance/.fuzzingserver)
#
# Installs autobahntestsuite 25.10.1 (still Python 2 code) with a modern
# autobahn/Twisted from PyPI, then writes a Python 3 port of its fuzzing server
# and RFC 6455 test cases to DIR/ported (lib2to3 + the edits listed in
# port_autobahntestsuite.py).  Needs Python 3.11 or 3.12 (lib2to3 is gone in 3.13);
# set PYTHON to choose the interpreter.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:?usage: setup.sh DIR}"
py="${PYTHON:-python3.11}"
"$py" -m venv "$dir"
"$dir/bin/pip" install -q --disable-pip-version-check \
  autobahntestsuite==25.10.1 autobahn==26.10.2 Twisted==26.10.0 txaio==26.6.1 \
  pyOpenSSL service-identity Jinja2
site="$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$dir/bin/python" "$here/port_autobahntestsuite.py" "$site/autobahntestsuite" "$dir/ported"
PYTHONPATH="$dir/ported" "$dir/bin/python" -W ignore -c 'import autobahntestsuite.fuzzing' \
  && echo "fuzzing server ready in $dir"
