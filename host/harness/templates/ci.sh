#!/usr/bin/env bash
# What CI runs for {{name}}: build it, then paygate's conformance suite with
# the fixtures in fixtures/, writing JUnit XML (junit.xml) for the CI's test
# report. Exits non-zero when a case fails. Needs `paygate-plugin` on PATH
# (`cargo install --locked --profile quick --path <paygate checkout>/host/harness`),
# or `paygate`.
set -euo pipefail
cd "$(dirname "$0")"
./build.sh
if command -v paygate-plugin >/dev/null; then
    harness=(paygate-plugin)
else
    harness=(paygate plugin)
fi
"${harness[@]}" test {{name}}.wasm --fixtures fixtures --junit junit.xml
