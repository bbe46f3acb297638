#!/usr/bin/env bash
# Builds every guest plugin as a release WebAssembly component, copies them
# to plugins/dist/ and prints that directory.
set -euo pipefail

cd "$(dirname "$0")"
target=wasm32-wasip2

# rustup answers for the toolchain pinned by the repository's rust-toolchain.toml.
if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi

cargo build --release --target "$target" --workspace

out="${CARGO_TARGET_DIR:-$PWD/target}/$target/release"
# A stable place for the host's tests, benchmarks and demo, wherever the
# cargo target directory is.
mkdir -p dist
cp "$out"/*.wasm dist/
ls -l dist/*.wasm >&2
echo "$PWD/dist"
