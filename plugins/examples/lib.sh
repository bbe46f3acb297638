# Helpers shared by the example build scripts; sourced, not run.

# The exit status of a build whose toolchain could not be installed:
# plugins/examples/build.sh reports it as a skip rather than a failure.
readonly TOOL_UNAVAILABLE=75

# Stops with TOOL_UNAVAILABLE when `command`, which installing `tool` needs,
# is not on PATH.
require_command() {
    local tool=$1 command=$2
    if ! command -v "$command" >/dev/null; then
        echo "skipped: $tool could not be installed: $command is not on PATH" >&2
        exit "$TOOL_UNAVAILABLE"
    fi
}

# Runs an install step of `tool` quietly. When it fails, says why (the
# installer's first error line) and stops with TOOL_UNAVAILABLE, so a
# machine without registry access skips the port instead of failing.
install_tool() {
    local tool=$1 log reason
    shift
    log=$(mktemp)
    if "$@" >"$log" 2>&1; then
        rm -f "$log"
        return
    fi
    reason=$(grep -m1 -E '^(ERROR|npm error|error)\b' "$log" || tail -n1 "$log")
    rm -f "$log"
    echo "skipped: $tool could not be installed: ${reason:-$* failed}" >&2
    exit "$TOOL_UNAVAILABLE"
}

# Prints the built component's path in the repository and its size.
report_built() {
    local path=$1 root
    root=$(dirname "${BASH_SOURCE[0]}")/../..
    echo "built $(realpath --relative-to="$root" "$path") ($(du -h "$path" | cut -f1))" >&2
}
