#!/usr/bin/env bash
# Builds the Python and JavaScript ports of the sandbox adapter into
# plugins/dist/ (paypal_python.wasm, paypal_js.wasm). A port whose
# toolchain cannot be installed (no registry access, no python3 or npm) is
# skipped with the reason; a port that fails to build fails this script,
# after the other port has been tried.
set -uo pipefail
cd "$(dirname "$0")"

failed=0
for port in paypal-python paypal-js; do
    "./$port/build.sh"
    case $? in
        0) ;;
        75) ;; # TOOL_UNAVAILABLE (lib.sh): the port's script said why it skipped.
        *) echo "failed: $port" >&2; failed=1 ;;
    esac
done
exit "$failed"
