#!/usr/bin/env bash
# Builds the Python port of the sandbox adapter into
# plugins/dist/paypal_python.wasm with componentize-py, pinned in
# build-requirements.txt and installed once into a private virtualenv.
# The component embeds a CPython interpreter, snapshotted after `adapter`
# is imported, so a call starts with the module already loaded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
source "$here/../lib.sh"
venv="$here/.venv"
out="$here/../../dist/paypal_python.wasm"

require_command componentize-py python3
if [ ! -x "$venv/bin/pip" ]; then
    install_tool componentize-py python3 -m venv "$venv"
fi
install_tool componentize-py "$venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$here/build-requirements.txt"

mkdir -p "$(dirname "$out")"
"$venv/bin/componentize-py" --quiet -d "$here/../../../wit" -w provider-adapter \
    componentize -p "$here" adapter -o "$out"
report_built "$out"
