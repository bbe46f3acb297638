#!/usr/bin/env bash
# Builds {{name}}.wasm, the plugin's WebAssembly component, from src/.
set -euo pipefail
cd "$(dirname "$0")"
target=wasm32-wasip2
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi
cargo build --quiet --release --target "$target"
cp "${CARGO_TARGET_DIR:-target}/$target/release/{{crate}}.wasm" {{name}}.wasm
echo "built $PWD/{{name}}.wasm"
