#!/usr/bin/env bash
# Builds {{name}}.wasm, the plugin's WebAssembly component, from app.py with
# componentize-py (pinned in build-requirements.txt, installed once into
# .venv/). The component embeds a CPython interpreter, snapshotted after
# `app` is imported.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/componentize-py ] || [ build-requirements.txt -nt .venv/bin/componentize-py ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r build-requirements.txt
    touch .venv/bin/componentize-py
fi
.venv/bin/componentize-py --quiet -d wit -w {{world}} componentize app -o {{name}}.wasm
echo "built $PWD/{{name}}.wasm"
