#!/usr/bin/env bash
# Builds {{name}}.wasm, the plugin's WebAssembly component, from app.js with
# componentize-js (pinned in package-lock.json). The component embeds the
# StarlingMonkey engine, snapshotted after app.js is evaluated.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
# paygate gives plugins no wasi:http (outbound HTTP is its own `http`
# import, allow-list and all), so the engine's fetch() is left out.
node_modules/.bin/componentize-js --wit wit --world-name {{world}} \
    --disable http fetch-event -o {{name}}.wasm app.js
echo "built $PWD/{{name}}.wasm"
