#!/usr/bin/env python3
"""Splits a `perf script` of the API bench's process into the parts of a
request, as docs/benchmarks/notes/api.md reports them.

Reads `perf script` output (recorded with `--call-graph dwarf`) on standard
input. Only samples of the host's threads (named `paygate`) are counted.

  profile-split.py create|show
      each sample counted once, in the first part whose code is on its
      stack, in the order of the part list below;
  profile-split.py --under REGEX [--top N]
      of the samples with a frame matching REGEX, every function called
      under it (each counted once per sample), as shares of all the host's
      samples: where the time under one function goes.
"""

import argparse
import collections
import re
import sys

HOST_THREAD = "paygate"

# Each part: a name and the frames that make a sample belong to it. Order
# matters: a request's stack holds hyper, axum and tokio frames under
# everything, so the specific parts come first.
PLUGIN_PARTS = [
    ("the provider's HTTP exchange (`http.send`, hyper's client)",
     r"imports::http|outbound::HttpClient|reqwest|hyper::client|hyper_util::client|UpgradeableConnection"),
    ("the provider adapter's sandbox (instantiation, the store's drop, its imports)",
     r"LoadedPlugin>::create_payment|ProviderAdapter"),
    ("the rate-limit policy's sandbox and its imports",
     r"decide_observed|RateLimitPolicy|policy::paygate|imports::counters|imports::config"),
]
# What runs under every request once the parts above are taken out.
SERVER_PARTS = [
    ("axum's and tower's layers, the request id, access log, authentication",
     r"access_log|rate_limit::rate_limit|middleware|auth|axum::|tower"),
    ("hyper's server", r"hyper::"),
    ("tokio's scheduler and I/O driver", r"tokio::runtime"),
]
PARTS = {
    "create": PLUGIN_PARTS + [
        ("sqlx (the saga's statements)", r"sqlx"),
        ("the Redis client and batches", r"redis::|redis_batch|counters::takes|providers::circuit"),
        ("other work on the plugins' fibers", r"wasmtime_fiber_start|fiber_start|HostFn"),
        ("the saga's and the handler's own code", r"paygate::payments::|paygate::http::payments"),
    ] + SERVER_PARTS,
    "show": PLUGIN_PARTS[2:] + [
        ("the Redis client and batches", r"redis::|redis_batch|counters::takes"),
        ("other work on the plugin's fiber", r"wasmtime_fiber_start|fiber_start|HostFn"),
        ("sqlx (the SELECT)", r"sqlx"),
        ("the handler's own code and its JSON", r"paygate::http::payments|paygate::payments::"),
    ] + SERVER_PARTS,
}


def samples(lines):
    """Yields (thread, frames leaf first) for each sample."""
    thread, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if frames:
                yield thread, frames
            thread, frames = None, []
        elif line[0] not in " \t":
            thread, frames = line.split(None, 1)[0], []
        else:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                frames.append(parts[1])
    if frames:
        yield thread, frames


def function(frame):
    """A frame's function, without its offset and object file."""
    return re.sub(r"\+0x[0-9a-f]+( \(.*\))?$|\s\([^)]*\)$", "", frame)


def split(stacks, parts):
    compiled = [(name, re.compile(rx)) for name, rx in parts]
    counts, total = collections.Counter(), 0
    for frames in stacks:
        total += 1
        for name, rx in compiled:
            if any(rx.search(f) for f in frames):
                counts[name] += 1
                break
        else:
            counts["the rest"] += 1
    print(f"{total} samples in the host's threads\n")
    print("| part | share of the host's samples |")
    print("|---|---|")
    for name, _ in parts + [("the rest", None)]:
        print(f"| {name} | {100 * counts[name] / max(total, 1):.1f}% |")


def under(stacks, anchor, top):
    rx = re.compile(anchor)
    inclusive, total, matched = collections.Counter(), 0, 0
    for frames in stacks:
        total += 1
        hits = [i for i, f in enumerate(frames) if rx.search(f)]
        if not hits:
            continue
        matched += 1
        seen = set()
        for frame in frames[: max(hits)]:
            name = function(frame)
            if name not in seen:
                seen.add(name)
                inclusive[name] += 1
    share = lambda n: 100 * n / max(total, 1)
    print(f"{matched} of {total} samples ({share(matched):.1f}%) are under /{anchor}/\n")
    for name, n in inclusive.most_common(top):
        print(f"{share(n):6.2f}% {name[:200]}")


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("phase", nargs="?", choices=sorted(PARTS))
    args.add_argument("--under", metavar="REGEX")
    args.add_argument("--top", type=int, default=40)
    opts = args.parse_args()
    if bool(opts.phase) == bool(opts.under):
        args.error("name one of: a phase (create or show), or --under REGEX")
    stacks = [f for t, f in samples(sys.stdin) if t == HOST_THREAD]
    if opts.under:
        under(stacks, opts.under, opts.top)
    else:
        split(stacks, PARTS[opts.phase])


if __name__ == "__main__":
    main()
