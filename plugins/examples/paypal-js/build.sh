#!/usr/bin/env bash
# Builds the JavaScript port of the sandbox adapter into
# plugins/dist/paypal_js.wasm with componentize-js, pinned in
# package-lock.json. The component embeds the StarlingMonkey engine
# (SpiderMonkey), snapshotted after adapter.js is evaluated.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
source "$here/../lib.sh"
cd "$here"
out=../../dist/paypal_js.wasm

require_command componentize-js npm
# `npm ci` starts from an empty node_modules; only pay for that when the
# lock file changed. (package.json also names @bytecodealliance/preview2-shim:
# componentize-js 0.23.0 imports it without declaring it, and `npm ci`
# installs only what is declared.)
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    install_tool componentize-js npm ci --no-audit --no-fund
fi

mkdir -p "$(dirname "$out")"
# paygate grants no wasi:http (outbound HTTP goes through its own `http`
# import, allow-list and all), so the engine's fetch() support, which would
# import it, is left out.
node_modules/.bin/componentize-js --wit ../../../wit --world-name provider-adapter \
    --disable http fetch-event -o "$out" adapter.js
report_built "$out"
