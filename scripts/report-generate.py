#!/usr/bin/env python3
"""Assembles docs/BENCHMARKS.md and the concurrency plot from the JSON the
benches write (BENCH_JSON), for scripts/report, which runs them.

  report-generate.py machine --quick 0|1        the machine, as JSON (stdout)
  report-generate.py step --name ... ...        one step's record, one JSON line
  report-generate.py build --results DIR --notes DIR --out FILE --plot FILE

`build` reads DIR/machine.json, DIR/steps.jsonl and DIR/<bench>.json;
every figure and every met/not met is computed from them, and each
section's hand-written notes (NOTES/<section>.md) are included verbatim.
Only `build` with a plot needs matplotlib (scripts/report installs it).
"""

import argparse
import datetime as dt
import json
import math
import os
import re
import subprocess
import sys

# ---------------------------------------------------------------------------
# Recording a run.


def output(*cmd):
    """A command's output, or "" when it is missing or fails."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout if out.returncode == 0 else ""


def run(*cmd):
    """A command's first output line, or None."""
    lines = output(*cmd).strip().splitlines()
    return lines[0].strip() if lines else None


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def loadavg():
    return " ".join(read("/proc/loadavg").split()[:3])


def machine(quick):
    cpuinfo = read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", read("/proc/meminfo"), re.M)
    os_name = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', read("/etc/os-release"), re.M)
    lock = read(os.path.join(os.path.dirname(__file__), "..", "Cargo.lock"))
    wasmtime = re.search(r'name = "wasmtime"\nversion = "([^"]+)"', lock)
    redis_version = re.search(r"^redis_version:(\S+)",
                              output("redis-cli", "-h", "127.0.0.1", "INFO", "server"), re.M)
    # The report empties its results directory before it asks: those
    # files are its own output, not changes to what it measures.
    dirty = run("git", "status", "--porcelain", "--untracked-files=no",
                "--", ".", ":(exclude)docs/benchmarks/results")
    return {
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick == "1",
        "nproc": os.cpu_count(),
        "cpu_model": model.group(1) if model else None,
        "memory_gib": int(mem.group(1)) / 1024 / 1024 if mem else None,
        "os": os_name.group(1) if os_name else None,
        "kernel": os.uname().release,
        "rustc": run("rustc", "--version"),
        "wasmtime": wasmtime.group(1) if wasmtime else None,
        "postgres": run("psql", "-X", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres",
                        "-Atc", "SHOW server_version"),
        "redis": redis_version.group(1) if redis_version else None,
        "rabbitmq": run("rabbitmqctl", "version"),
        "commit": run("git", "rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(dirty),
        "load_before": loadavg(),
    }


# ---------------------------------------------------------------------------
# Formatting.


def num(v, digits=1, unit=""):
    """A figure, or an en dash when it was not measured."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:,.{digits}f}{unit}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def utc(ts):
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def step_line(step):
    """Command, when, how long and the load around a step."""
    if step is None:
        return "Not run."
    start, end = utc(step["start"]), utc(step["end"])
    line = (f"Command: `{step['command']}` · ran {start:%H:%M:%S}–{end:%H:%M:%S} UTC "
            f"({step['end'] - step['start']} s) · load average {step['load_before']} before, "
            f"{step['load_after']} after.")
    if step["status"] != 0:
        line += f" **The bench failed (exit status {step['status']}); see its log.**"
    return line


# ---------------------------------------------------------------------------
# Targets: each computed from the figures.

ORIGINAL = {"create_rate": "9.8/s", "create_p99": "p50 815 ms", "show_rate": "258/s"}


def plugin_row(data, ident):
    for row in (data or {}).get("rows", []):
        if row["id"] == ident:
            return row
    return None


def api_phase(data, kind):
    for phase in (data or {}).get("phases", []):
        if phase["kind"] == kind:
            return phase
    return None


REQUEST = {"create": "POST", "show": "GET show", "refund": "POST refund"}


def ceiling_of(api, kind):
    """The pgbench ceiling of the SQL behind `kind`: for the create, its
    simple-protocol run (the first baseline is the create's in results
    written before baselines said what they are of)."""
    baselines = (api or {}).get("baselines") or []
    of_kind = [b for b in baselines if b.get("of") == kind]
    simple = [b for b in of_kind if "simple protocol" in b.get("label", "")]
    if simple or of_kind:
        return (simple or of_kind)[0]
    return baselines[0] if kind == "create" and baselines and "of" not in baselines[0] else None


def prepared_ceiling_of(api, kind):
    """The ceiling of `kind` run with `-M prepared` (how sqlx sends its
    statements), else its only one. Since 2026-12-06 the bench runs it right
    before and right after the API's phase (`at`): the ceiling is then the
    mean of the two, and `runs` holds each."""
    baselines = [b for b in (api or {}).get("baselines") or [] if b.get("of") == kind]
    bracket = [b for b in baselines if b.get("at") in ("before", "after")]
    if bracket:
        runs = [b["tps"] for b in bracket]
        return {**bracket[0], "tps": sum(runs) / len(runs), "runs": runs}
    prepared = [b for b in baselines if "prepared" in b.get("label", "")]
    return (prepared or baselines or [None])[0]


def targets(d):
    """Rows of (target, original system, measured, met) from the bench JSON."""
    rows = []

    def add(target, original, measured, ok):
        met = "–" if ok is None else ("yes" if ok else "**no**")
        rows.append((target, original, measured, met))

    def share_of(phase, ceiling, percent, target):
        """A phase's rate as a share of its same-run ceiling, against `percent`
        (none: shown, not judged)."""
        if not phase or not ceiling:
            add(target, "", "–", None)
            return
        share = 100 * phase["per_second"] / ceiling["tps"]
        runs = ceiling.get("runs") or []
        bracket = (f"; the mean of its runs right before and after the phase, "
                   f"{' and '.join(num(r, 0) for r in runs)} tps" if len(runs) > 1 else "")
        add(target, "", f"{share:.0f}% ({num(phase['per_second'], 1)}/s of {num(ceiling['tps'], 0)} tps"
            f"{bracket})", None if percent is None else share >= percent)

    def check(value, test):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return test(value)

    policy = plugin_row(d.get("plugins"), "policy_fresh")
    cached = plugin_row(d.get("plugins"), "load_cached")
    m = policy["median_us"] if policy else None
    add("plugin: policy call, fresh sandbox, median ≤ 25 µs", "",
        num(m, 1, " µs"), check(m, lambda v: v <= 25))
    p = policy["p99_us"] if policy else None
    add("plugin: policy call p99 ≤ 60 µs", "", num(p, 1, " µs"), check(p, lambda v: v <= 60))
    c = cached["median_us"] / 1000 if cached else None
    add("plugin: load from the compiled cache ≤ 2 ms (median)", "",
        num(c, 2, " ms") + (f" (p99 {num(cached['p99_us'] / 1000, 2)} ms)" if cached else ""),
        check(c, lambda v: v <= 2))

    api = d.get("api")
    create, show = api_phase(api, "create"), api_phase(api, "show")
    at = lambda ph: f" (at {ph['clients']} clients)" if ph and ph["clients"] != 32 else ""
    at32 = lambda ph, test: (lambda v: test(v) if ph["clients"] == 32 else None)
    v = create["per_second"] if create else None
    add("create ≥ 1,000 payments/s at 32 clients", ORIGINAL["create_rate"],
        num(v, 1, "/s") + at(create), check(v, at32(create, lambda x: x >= 1000)) if create else None)
    v = create["p99_ms"] if create else None
    add("create p99 ≤ 50 ms at 32 clients", ORIGINAL["create_p99"],
        f"p99 {num(v, 2)} ms (p50 {num(create['p50_ms'], 2)} ms)" + at(create) if create else "–",
        check(v, at32(create, lambda x: x <= 50)) if create else None)
    v = create["errors"] if create else None
    add("create: zero errors", "", num(v, 0), check(v, lambda x: x == 0))
    ceiling = ceiling_of(api, "create")
    if create and ceiling:
        add("(create throughput against the pgbench ceiling, simple protocol)", "",
            f"{100 * create['per_second'] / ceiling['tps']:.0f}% of {num(ceiling['tps'], 0)} tps",
            None)
    share_of(create, prepared_ceiling_of(api, "create"), 75,
             "create ≥ 75% of the same-run pgbench ceiling of its SQL (`-M prepared`, as sqlx sends it)")
    pinned = d.get("api_pinned")
    if pinned:
        share_of(api_phase(pinned, "create"), prepared_ceiling_of(pinned, "create"), None,
                 f"(the same, with {pinned_cpus(pinned)}: a run of its own)")
    v = show["per_second"] if show else None
    add("show ≥ 5,000 requests/s at 32 clients", ORIGINAL["show_rate"],
        num(v, 1, "/s") + at(show), check(v, at32(show, lambda x: x >= 5000)) if show else None)
    share_of(show, prepared_ceiling_of(api, "show"), 30,
             "show ≥ 30% of the same-run pgbench ceiling of its SELECT")
    v = show["errors"] if show else None
    add("show: zero errors", "", num(v, 0), check(v, lambda x: x == 0))
    rss = [ph["rss_max_mib"] for ph in (create, show) if ph and ph.get("rss_max_mib") is not None]
    v = max(rss) if rss else None
    add("RSS under create and show load ≤ 150 MiB (the bench process: host, load generator and "
        "sandbox provider)", "", num(v, 1, " MiB"), check(v, lambda x: x <= 150))
    refund = api_phase(api, "refund")
    at16 = lambda ph: f" (at {ph['clients']} clients)" if ph and ph["clients"] != 16 else ""
    v = refund["per_second"] if refund else None
    add("refund ≥ 500 refunds/s at 16 clients", "", num(v, 1, "/s") + at16(refund),
        check(v, lambda x: x >= 500 and refund["clients"] == 16))
    v = refund["p99_ms"] if refund else None
    add("refund p99 ≤ 50 ms at 16 clients", "",
        f"p99 {num(v, 2)} ms (p50 {num(refund['p50_ms'], 2)} ms)" + at16(refund) if refund else "–",
        check(v, lambda x: x <= 50 and refund["clients"] == 16))
    ceiling = ceiling_of(api, "refund")
    if refund and ceiling:
        add("(refund throughput against the pgbench ceiling of its SQL)", "",
            f"{100 * refund['per_second'] / ceiling['tps']:.0f}% of {num(ceiling['tps'], 0)} tps "
            f"at {ceiling['clients']} clients", None)

    notify = d.get("notify") or {}
    lat, drain = notify.get("latency"), notify.get("drain")
    rate = f" at {num(lat['offered_rate'], 0)}/s" if lat else ""
    v = lat["median_ms"] if lat else None
    add("notifications: commit → received median ≤ 20 ms at 300/s", "",
        num(v, 1, " ms") + rate, check(v, lambda x: x <= 20))
    v = lat["p99_ms"] if lat else None
    add("notifications: commit → received p99 ≤ 100 ms at 300/s", "",
        num(v, 1, " ms") + rate, check(v, lambda x: x <= 100))
    v = drain["rate"] if drain else None
    add("notifications: drain ≥ 3,000/s", "",
        num(v, 0, "/s") + (f" ({num(drain['backlog'], 0)} backlog)" if drain else ""),
        check(v, lambda x: x >= 3000))
    if lat and drain:
        lost = lat["transitions"] - lat["received"] + drain["lost"]
        dup = lat["duplicates"] + drain["duplicates"]
        add("notifications: zero lost, zero duplicated", "", f"{lost} lost, {dup} duplicated",
            lost == 0 and dup == 0 and not lat["timed_out"] and not drain["timed_out"])
    else:
        add("notifications: zero lost, zero duplicated", "", "–", None)
    replay = notify.get("replay")
    v = replay["queue_seconds"] if replay else None
    add("bulk replay of 10,000 failed notifications queued ≤ 5 s", "",
        num(v, 2, " s") + (f" ({num(replay['queued'], 0)} queued)" if replay else ""),
        check(v, lambda x: x <= 5 and replay["queued"] >= 10000))
    v = replay["rate"] if replay else None
    add("(bulk replay: delivered at the notifier's usual rate)", "",
        num(v, 0, "/s") + (f", {replay['received']} received, {replay['duplicates']} duplicated"
                           if replay else ""),
        None)

    swap = d.get("swap")
    v = swap["change_to_serving_max_ms"] if swap else None
    add("hot swap: registry change → serving ≤ 1 s (slowest of the swaps)", "",
        num(v, 0, " ms") + (f" (p50 {num(swap['change_to_serving_p50_ms'], 0)} ms, "
                            f"{swap['swaps']} swaps)" if swap else ""),
        check(v, lambda x: x <= 1000))
    v = swap["failed"] if swap else None
    add("hot swap: zero failed requests under load", "",
        num(v, 0) + (f" of {num(swap['payments'], 0)} at {swap['clients']} clients" if swap else ""),
        check(v, lambda x: x == 0))

    harness = d.get("harness")
    v = max(harness["cold"]["max_ms"], harness["cached"]["max_ms"]) if harness else None
    add("harness: `paygate plugin test` < 5 s (slowest run, cold or cached)", "",
        num(v, 0, " ms"), check(v, lambda x: x < 5000))

    rec = d.get("reconcile")
    # Both rounds: alone, and beside the creates whose rate the next line
    # compares (at the host's busy pace).
    v = max(rec["round_alone_s"], rec["round_beside_creates_s"]) if rec else None
    add("reconciliation: 10,000 pending payments settled in ≤ 60 s, alone and beside creates", "",
        (f"{num(rec['round_alone_s'], 1, ' s')} alone, {num(rec['round_beside_creates_s'], 1, ' s')} "
         f"beside creates ({num(rec['backlog'], 0)} payments)") if rec else "–",
        check(v, lambda x: x <= 60 and rec["backlog"] >= 10000))
    v = rec["create_ratio"] if rec else None
    add("reconciliation slows creates by ≤ 20% (same run)", "",
        (f"{100 * v:.0f}% of the creates/s without it ({num(rec['creates_during_round_per_s'], 0)}/s "
         f"against {num(rec['creates_alone_per_s'], 0)}/s)") if rec else "–",
        check(v, lambda x: x >= 0.8))

    con = d.get("console")
    v = con["p99_ms"] if con else None
    add("console: every view's data ≤ 200 ms (1,000 merchants, 10 plugins, 10,000 failed)", "",
        (f"p99 {num(v, 1)} ms (p50 {num(con['p50_ms'], 1)} ms; {num(con['merchants'], 0)} merchants, "
         f"{con['plugins']} plugins, {num(con['failed'], 0)} failed)") if con else "–",
        check(v, lambda x: x <= 200 and con["merchants"] >= 1000 and con["failed"] >= 10000))
    ext = d.get("external")
    for phase in ("create", "show"):
        r = ext["phases"][phase] if ext else None
        add(f"(external `wrk` run against `paygate-demo serve`: {phase} at "
            f"{ext['clients'] if ext else 32} connections, no non-2xx answer)", "",
            (f"{num(r['requests_per_s'], 1)}/s, p99 {num(r['p99_ms'], 1)} ms, "
             f"{num(r['non_2xx'], 0)} non-2xx") if r else "–",
            None if not r else r["non_2xx"] == 0 and not r["socket_errors"])
    tr = d.get("tracing")
    v = tr["ratio"] if tr else None
    add("access log and OTLP trace export on: creates at 32 clients ≥ 90% of the same run without them", "",
        (f"{100 * v:.0f}% ({num(tr['mean_on'], 0)}/s against {num(tr['mean_off'], 0)}/s)") if tr else "–",
        check(v, lambda x: x >= 0.9))
    return rows


# ---------------------------------------------------------------------------
# Sections.


def section_plugins(d):
    rows = [(r["measurement"], num(r["n"], 0), num(r["median_us"]), num(r["p99_us"]),
             num(r["max_us"])) for r in d["rows"]]
    return table(["measurement", "n", "median µs", "p99 µs", "max µs"], rows)


def phase_row(p, label):
    return (label, p["clients"], num(p["requests"], 0), num(p["errors"], 0),
            num(p["per_second"]), num(p["mean_ms"], 2), num(p["p50_ms"], 2),
            num(p["p90_ms"], 2), num(p["p99_ms"], 2), num(p["max_ms"], 2),
            num(p["rss_max_mib"]))


def cpu_row(name, c):
    return (name, num(c["wall"]), num(c["machine"], 2), num(c["host"], 2), num(c["loadgen"], 2),
            num(c["sandbox"], 2), num(c["children"], 2), num(c["postgres"], 2),
            num(c["redis"], 2), num(c["other"], 2))


def section_api(d, plot_link):
    s = d["settings"]
    out = [
        f"Server: {d['postgres']}. Host in the bench process: DB pool {s['db_pool_size']}, "
        f"rate-limit policy {'on (limits never reached)' if s['rate_limit'] else '**off**'}, "
        f"log level `{s['rust_log']}`, {s['client_threads']} load generator thread(s); "
        f"phases {num(s['seconds'], 1)} s after a {num(s['warmup_seconds'], 0)} s warm-up, "
        f"sweep {num(s['sweep_seconds'], 1)} s per level after {num(s['sweep_warmup_seconds'], 0)} s.",
        "",
    ]
    out += measurements(d)
    out += ["", f"Host RSS is `VmRSS` of the bench process (host, load generator and sandbox "
            f"provider); its peak (`VmHWM`) over the run: {num(d['rss_peak_mib'])} MiB. pgbench rows "
            f"are transactions (one run of the script) per second and pgbench's average latency:"]
    out += [f"- `{b['command']}`" for b in d["baselines"]]

    errors = [(f"{REQUEST[p['kind']]}, {where}{p['clients']} clients",
               code, n)
              for where, phases in (("", d["phases"]), ("sweep, ", d["sweep"] + d["show_sweep"]))
              for p in phases for code, n in p["error_codes"].items()]
    if errors:
        out += [""] + table(["errors in", "status and code", "count"], errors)

    for title, per, sweep in (("`POST /api/v1/payments`", "payments/s", d["sweep"]),
                              ("`GET /api/v1/payments/{id}/show`", "requests/s", d["show_sweep"])):
        if not sweep:
            continue
        out += ["", f"### Concurrency sweep: {title}", ""]
        out += table(["clients", "requests", "errors", per, "p50 ms", "p90 ms", "p99 ms", "max ms",
                      "host cores", "postgres cores", "host RSS MiB (max)"],
                     [(p["clients"], num(p["requests"], 0), num(p["errors"], 0),
                       num(p["per_second"]), num(p["p50_ms"], 2), num(p["p90_ms"], 2),
                       num(p["p99_ms"], 2), num(p["max_ms"], 2), num(p["cpu"]["host"], 2),
                       num(p["cpu"]["postgres"], 2), num(p["rss_max_mib"])) for p in sweep])
    if plot_link:
        out += ["", f"![create and show throughput and p99 latency against concurrency]({plot_link})"]

    out += ["", "### Where the CPU went (average cores in use over each measured window)", ""]
    out += cpu_table(d)
    out += ["", "\"postgres (all)\" is every PostgreSQL process on the machine, including "
            "backends of other clients; \"other processes\" is everything else the machine ran."]
    out += postgres_per_request(d)
    return out


def pinned_cpus(d):
    s = d["settings"]
    cpus = lambda c: ",".join(str(n) for n in c)
    return (f"PostgreSQL on CPU {cpus(s['pg_cpus'])} of its own and everything else on CPU "
            f"{cpus(s['other_cpus'])}")


def section_api_pinned(d):
    """The API bench's second run, with PostgreSQL pinned to CPUs of its own
    (`BENCH_PG_CPUS`); results since 2026-12-06."""
    started = d["started_at"][:16].replace("T", " ")
    out = ["", "### With PostgreSQL on CPUs of its own", "",
           f"A second run of the same bench, started {started} UTC, with {pinned_cpus(d)} "
           "(`BENCH_PG_CPUS`, host/benches/api/pin.rs), as if the database ran on a server of its "
           "own: each phase and its ceilings run on the same split, so the host's CPU does not "
           "come out of PostgreSQL's.", ""]
    out += measurements(d)
    out += ["", "#### Where the CPU went", ""]
    return out + cpu_table(d) + postgres_per_request(d)


def measurements(d):
    """A row per phase and per pgbench ceiling of an API bench run."""
    rows = [phase_row(p, p["label"]) for p in d["phases"]]
    rows += [(b["label"], b["clients"], num(b["transactions"], 0), num(b["failed"], 0),
              num(b["tps"]), num(b["latency_avg_ms"], 2), "–", "–", "–", "–", "–")
             for b in d["baselines"]]
    return table(["measurement", "clients", "requests", "errors", "per second", "mean ms",
                  "p50 ms", "p90 ms", "p99 ms", "max ms", "host RSS MiB (max)"], rows)


def cpu_table(d):
    """Where the CPU went in each phase, sweep level and ceiling of an API bench run."""
    cpu = [cpu_row(f"{REQUEST[p['kind']]}, {p['clients']} clients", p["cpu"])
           for p in d["phases"]]
    cpu += [cpu_row(f"sweep {REQUEST[p['kind']]}, "
                    f"{p['clients']} clients", p["cpu"]) for p in d["sweep"] + d["show_sweep"]]
    cpu += [cpu_row(b["label"], b["cpu"]) for b in d["baselines"]]
    return table(["phase", "wall s", f"machine busy (of {d['cores']})", "paygate host",
                  "load generator", "sandbox provider", "pgbench client", "postgres (all)",
                  "redis", "other processes"], cpu)


def postgres_per_request(d):
    """PostgreSQL's CPU and work per request of each phase beside the same per
    transaction of each ceiling (results since 2026-12-06 have them)."""
    rows = []
    for name, rate, c, pg in (
            [(f"{REQUEST[p['kind']]}, {p['clients']} clients", p["per_second"], p["cpu"],
              p.get("postgres_per_request")) for p in d["phases"]]
            + [(b["label"], b["tps"], b["cpu"], b.get("postgres_per_request"))
               for b in d["baselines"]]):
        if pg and rate:
            rows.append((name, num(c["postgres"] * 1e6 / rate, 0), num(pg["commits"], 2),
                         num(pg["rows_written"], 2), num(pg["wal_records"], 1),
                         num(pg["wal_bytes"], 0), num(pg["wal_fpi"], 3), num(pg["wal_syncs"], 3)))
    if not rows:
        return []
    out = ["", "### What PostgreSQL did per request (per transaction of a ceiling)", ""]
    out += table(["phase", "PostgreSQL CPU µs", "commits", "rows written", "WAL records",
                  "WAL bytes", "full-page images", "WAL flushes"], rows)
    out += ["", "From `pg_stat_database` (every database) and `pg_stat_wal` read before and after "
            "each window, divided by the requests answered in it. Backends report these at most "
            "once a second, so each figure is exact to about a second of the window's traffic."]
    return out


def section_notify(d):
    lat, drain, base = d["latency"], d["drain"], d["baseline"]
    out = [f"`NOTIFIER_CONCURRENCY={d['notifier_concurrency']}`, "
           f"`OUTBOX_BATCH_SIZE={d['outbox_batch_size']}`.", ""]
    out += table(["measurement", "transitions", "offered rate", "received", "duplicates",
                  "median", "p90", "p99", "max"],
                 [("commit of a status change → notification received", num(lat["transitions"], 0),
                   num(lat["offered_rate"], 0, "/s"),
                   num(lat["received"], 0) + (" (timed out)" if lat["timed_out"] else ""),
                   lat["duplicates"], num(lat["median_ms"], 1, " ms"), num(lat["p90_ms"], 1, " ms"),
                   num(lat["p99_ms"], 1, " ms"), num(lat["max_ms"], 1, " ms"))])
    out += [""]
    out += table(["measurement", "backlog", "received", "lost", "duplicates",
                  "time (incl. host start)", "rate", "rows LOG_SUCCESS"],
                 [("drain of pending notifications (host started after the backlog was written)",
                   num(drain["backlog"], 0),
                   num(drain["received"], 0) + (" (timed out)" if drain["timed_out"] else ""),
                   drain["lost"], drain["duplicates"], num(drain["seconds"], 1, " s"),
                   num(drain["rate"], 0, "/s"), num(drain["rows_delivered"], 0)),
                  *([("bulk replay of failed notifications (queued in "
                      f"{num(d['replay']['queue_seconds'], 2, ' s')}, then delivered)",
                      num(d["replay"]["failed"], 0),
                      num(d["replay"]["received"], 0)
                      + (" (timed out)" if d["replay"]["timed_out"] else ""),
                      d["replay"]["failed"] - d["replay"]["received"], d["replay"]["duplicates"],
                      num(d["replay"]["seconds"], 1, " s"), num(d["replay"]["rate"], 0, "/s"), "")]
                    if d.get("replay") else []),
                  ("baseline: signed POSTs straight to the same receiver, no database or broker",
                   num(base["requests"], 0), "", "", "", "", num(base["rate"], 0, "/s"), "")])
    return out


def section_swap(d):
    return table(["clients", "payments", "rate", "failed requests", "swaps (+1 corrupt, refused)",
                  "registry change → serving p50", "max"],
                 [(d["clients"], num(d["payments"], 0), num(d["rate"], 0, "/s"), d["failed"],
                   d["swaps"], num(d["change_to_serving_p50_ms"], 0, " ms"),
                   num(d["change_to_serving_max_ms"], 0, " ms"))])


def section_harness(d):
    name = os.path.basename(d["component"])
    return table([f"paygate plugin test {name}", "runs", "median ms", "max ms"],
                 [("cold (compiles)", d["runs"], d["cold"]["median_ms"], d["cold"]["max_ms"]),
                  ("cached", d["runs"], d["cached"]["median_ms"], d["cached"]["max_ms"])])


def section_reconcile(d):
    clients = d["clients"]
    out = table(["backlog of lost webhooks", "round alone", "rate",
                 f"round beside {clients} creating clients"],
                [(num(d["backlog"], 0), num(d["round_alone_s"], 1, " s"),
                  num(d["backlog"] / d["round_alone_s"], 0, "/s"),
                  num(d["round_beside_creates_s"], 1, " s"))])
    out += [""]
    if "creates_alone_after_per_s" in d:
        # Since session 20: alone before and after the round, the ratio to their mean.
        out += table([f"creates, {clients} clients", "alone before", "alone after",
                      "during the round", "ratio to alone (mean)", "errors"],
                     [("", num(d["creates_alone_before_per_s"], 0, "/s"),
                       num(d["creates_alone_after_per_s"], 0, "/s"),
                       num(d["creates_during_round_per_s"], 0, "/s"),
                       f"{100 * d['create_ratio']:.0f}%", num(d["create_errors"], 0))])
        return out
    out += table([f"creates, {clients} clients", "alone", "during the round", "ratio", "errors"],
                 [("", num(d["creates_alone_per_s"], 0, "/s"),
                   num(d["creates_during_round_per_s"], 0, "/s"),
                   f"{100 * d['create_ratio']:.0f}%", num(d["create_errors"], 0))])
    return out


def section_console(d):
    return table(["merchants", "plugins", "failed notifications", "rounds", "bytes per load",
                  "p50", "p99", "max"],
                 [(num(d["merchants"], 0), d["plugins"], num(d["failed"], 0), d["rounds"],
                   num(d["bytes"], 0), num(d["p50_ms"], 1, " ms"), num(d["p99_ms"], 1, " ms"),
                   num(d["max_ms"], 1, " ms"))])


def section_tracing(d):
    rows = [(r["round"], num(r["off_per_second"], 1), num(r["off_p99_ms"], 1, " ms"),
             num(r["on_per_second"], 1), num(r["on_p99_ms"], 1, " ms"), num(r["access_lines"], 0))
            for r in d["rounds"]]
    rows.append(("mean", num(d["mean_off"], 1), "", num(d["mean_on"], 1), "", ""))
    return table(["round", "creates/s, both off", "p99, off", "creates/s, access log + OTLP",
                  "p99, on", "access lines"], rows) + [
        "", f"The receiver took {num(d['exports'], 0)} exports, "
            f"{d['export_bytes'] / 1e6:.1f} MB of spans."]


def section_external(d):
    rows = [(name, num(r["requests_per_s"], 1), num(r["p50_ms"], 1), num(r["p90_ms"], 1),
             num(r["p99_ms"], 1), num(r["non_2xx"], 0), r["socket_errors"] or "none",
             num(r["host_cpu_cores"], 2), num(r["host_cpu_us_per_request"], 0, " µs"))
            for name, r in d["phases"].items()]
    return [f"`wrk`, {d['threads']} threads, {d['clients']} connections, {d['seconds']} s per "
            f"phase, against `paygate-demo serve` in its own process; the host's peak RSS "
            f"{num(d['host_peak_rss_kib'] / 1024, 0)} MiB.", ""] + table(
        ["phase", "requests/s", "p50 ms", "p90 ms", "p99 ms", "non-2xx", "socket errors",
         "host CPU (cores)", "host CPU per request"], rows)


SECTIONS = [
    ("plugins", "Plugin runtime", lambda d, _: section_plugins(d)),
    ("api", "Merchant API under load", section_api),
    ("external", "Merchant API from an external load generator (wrk)",
     lambda d, _: section_external(d)),
    ("notify", "Merchant notifications", lambda d, _: section_notify(d)),
    ("swap", "Plugin hot swap under load", lambda d, _: section_swap(d)),
    ("harness", "Plugin test harness", lambda d, _: section_harness(d)),
    ("reconcile", "Reconciliation of lost webhooks", lambda d, _: section_reconcile(d)),
    ("console", "Operator console load", lambda d, _: section_console(d)),
    ("tracing", "Access log and trace export", lambda d, _: section_tracing(d)),
]


# ---------------------------------------------------------------------------
# The plot.


def plot(api, path, title):
    """Throughput and p99 latency against clients, create and show; False
    when there is no sweep to draw."""
    if not api or not api.get("sweep"):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    series = [("create (POST /api/v1/payments)", api["sweep"], "tab:blue"),
              ("show (GET …/show)", api.get("show_sweep") or [], "tab:orange")]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    for label, sweep, color in series:
        if not sweep:
            continue
        clients = [p["clients"] for p in sweep]
        top.plot(clients, [p["per_second"] for p in sweep], "o-", color=color, label=label)
        bottom.plot(clients, [p["p99_ms"] for p in sweep], "o-", color=color, label=f"{label} p99")
        bottom.plot(clients, [p["p50_ms"] for p in sweep], "x--", color=color, alpha=0.6,
                    label=f"{label} p50")
    ceiling = ceiling_of(api, "create")
    if ceiling:
        top.axhline(ceiling["tps"], color="tab:gray", linestyle=":",
                    label=f"pgbench ceiling of the create SQL, {ceiling['clients']} clients")
    top.axhline(1000, color="tab:blue", linestyle=(0, (1, 3)), linewidth=1,
                label="target: create 1,000/s at 32 clients")
    top.axhline(5000, color="tab:orange", linestyle=(0, (1, 3)), linewidth=1,
                label="target: show 5,000/s at 32 clients")
    bottom.axhline(50, color="tab:blue", linestyle=(0, (1, 3)), linewidth=1,
                   label="target: create p99 50 ms at 32 clients")
    top.set_ylabel("requests per second")
    top.set_ylim(bottom=0)
    top.set_title(title, fontsize=10)
    bottom.set_ylabel("latency, ms (log scale)")
    bottom.set_yscale("log")
    bottom.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    bottom.set_xlabel("concurrent clients (log scale)")
    bottom.set_xscale("log", base=2)
    ticks = sorted({p["clients"] for p in api["sweep"]})
    bottom.set_xticks(ticks, [str(t) for t in ticks])
    for ax in (top, bottom):
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------
# The document.


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def build(args):
    machine_info = load_json(os.path.join(args.results, "machine.json"))
    if machine_info is None:
        sys.exit(f"{args.results}/machine.json is missing: run scripts/report first")
    steps = {}
    for line in read(os.path.join(args.results, "steps.jsonl")).splitlines():
        if line.strip():
            step = json.loads(line)
            steps[step["name"]] = step
    data = {name: load_json(os.path.join(args.results, f"{name}.json")) for name, _, _ in SECTIONS}
    data["api_pinned"] = load_json(os.path.join(args.results, "api-pinned.json"))
    m = machine_info
    when = dt.datetime.fromisoformat(m["started_at"])
    # A step measured on its own after the run (marked "separate" in
    # steps.jsonl by whoever appended it) keeps its own line in its section
    # but is not part of the run's span.
    ordered = sorted((s for s in steps.values() if not s.get("separate")),
                     key=lambda s: s["start"])
    load_after = ordered[-1]["load_after"] if ordered else "?"
    minutes = (ordered[-1]["end"] - ordered[0]["start"]) / 60 if ordered else 0
    command = ("REPORT_QUICK=1 " if m["quick"] else "") + "scripts/report"

    title = (f"paygate, {when:%Y-%m-%d %H:%M} UTC, {m['nproc']} cores {m['cpu_model']}"
             + (" (QUICK RUN)" if m["quick"] else ""))
    plotted = plot(data["api"], args.plot, title)
    plot_link = os.path.relpath(args.plot, os.path.dirname(os.path.abspath(args.out))) \
        if plotted else None

    doc = ["# paygate benchmarks", ""]
    doc += [
        "Generated by `scripts/report`, which runs every benchmark below in sequence on one "
        "machine (about 15 minutes, builds included), then assembles this file and "
        "`bench-concurrency.png` from the JSON each bench writes (kept in "
        "`docs/benchmarks/results/`). Do not edit this file: the analysis under each section "
        "comes from `docs/benchmarks/notes/<section>.md`, included verbatim; after editing "
        "those, `scripts/report --generate-only` rebuilds this file from the same results. "
        "The machine is shared and noisy: figures are medians and percentiles of many calls, "
        "and each baseline was measured in the same run.",
        "",
    ]
    if m["quick"]:
        doc += ["**Quick run (`REPORT_QUICK=1`): short phases for a smoke test of the pipeline. "
                "These figures are not for the record.**", ""]
    doc += table(["run", ""], [
        ("date", f"{when:%Y-%m-%d %H:%M} UTC, {minutes:.0f} min"),
        ("command", f"`{command}`"),
        ("commit", f"{m['commit']}" + (" with uncommitted changes" if m["uncommitted_changes"] else "")),
        ("machine", f"{m['nproc']} cores (nproc), {m['cpu_model']}, "
                    f"{num(m['memory_gib'], 1)} GiB memory"),
        ("OS", f"{m['os']}, kernel {m['kernel']}"),
        ("toolchain", f"{m['rustc']}, wasmtime {m['wasmtime']}, release profile"),
        ("services", f"PostgreSQL {m['postgres']}, Redis {m['redis']}, RabbitMQ {m['rabbitmq']}"),
        ("load average (1, 5, 15 min)", f"{m['load_before']} before, {load_after} after"),
    ])
    failed = [s["name"] for s in ordered if s["status"] != 0]
    if failed:
        doc += ["", f"**Failed steps: {', '.join(failed)}.** Their figures are missing or partial; "
                "scripts/report printed where their logs are."]

    doc += ["", "## Targets", ""]
    doc += table(["target", "original system", "measured", "met"], targets(data))

    for name, heading, render in SECTIONS:
        doc += ["", f"## {heading}", "", step_line(steps.get(name)), ""]
        if data[name] is None:
            doc += ["No figures: the bench did not write its results."]
        else:
            doc += render(data[name], plot_link)
            if name == "api" and data["api_pinned"]:
                doc += section_api_pinned(data["api_pinned"])
        notes = read(os.path.join(args.notes, f"{name}.md")).strip()
        if notes:
            doc += ["", notes]
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(doc) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("machine")
    p.add_argument("--quick", default="0")
    p = sub.add_parser("step")
    for flag in ("--name", "--command", "--load-before", "--load-after"):
        p.add_argument(flag, required=True)
    for flag in ("--start", "--end", "--status"):
        p.add_argument(flag, type=int, required=True)
    p = sub.add_parser("build")
    for flag in ("--results", "--notes", "--out", "--plot"):
        p.add_argument(flag, required=True)
    args = parser.parse_args()
    if args.action == "machine":
        print(json.dumps(machine(args.quick), indent=2))
    elif args.action == "step":
        print(json.dumps({"name": args.name, "command": args.command, "start": args.start,
                          "end": args.end, "status": args.status,
                          "load_before": args.load_before, "load_after": args.load_after}))
    else:
        build(args)


if __name__ == "__main__":
    main()
