#!/usr/bin/env python3
"""Turns bench/dataplane.sh's raw rows into markdown tables of medians and ratios.

usage: report.py RESULTS.tsv SKIPPED.tsv

RESULTS.tsv has a header line and one row per (workers, system, round); SKIPPED.tsv holds
"workers<TAB>system<TAB>reason" for systems that could not be measured. Medians are taken over
rounds; ratios and added latency compare medians at the same worker count.
"""

import csv
import statistics
import sys

ORDER = ["direct", "haproxy", "nginx", "weft", "floor-epoll", "floor-uring"]


def median(rows, key):
    values = [float(r[key]) for r in rows if r[key] not in ("", "-")]
    return statistics.median(values) if values else None


def fmt(value, pattern, missing="—"):
    return missing if value is None else pattern.format(value)


def ms(us):
    return None if us is None else us / 1000.0


def main():
    with open(sys.argv[1], newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    skipped = []
    with open(sys.argv[2]) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                skipped.append(parts)

    workers = sorted({int(r["workers"]) for r in rows} | {int(s[0]) for s in skipped})
    groups = {}
    for r in rows:
        groups.setdefault((int(r["workers"]), r["system"]), []).append(r)

    summary = [
        "| system | workers | rps (median) | × HAProxy | × direct | p50 / p99 ms at fixed rate "
        "| added p50 / p99 ms vs direct | CPU-s / 1000 req | RSS idle / under load MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    detail = [
        "| system | workers | rps per round | p50 / p90 / p99 ms at max load | fixed rate achieved rps "
        "| p90 ms at fixed rate | failed or non-2xx responses |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for w in workers:
        base = {}
        for system in ORDER:
            g = groups.get((w, system))
            if g:
                base[system] = {
                    "rps": median(g, "rps"),
                    "fr_p50": median(g, "fr_p50_us"),
                    "fr_p99": median(g, "fr_p99_us"),
                }
        for system in ORDER:
            g = groups.get((w, system))
            reason = next((s[2] for s in skipped if int(s[0]) == w and s[1] == system), None)
            if not g:
                if reason is not None:
                    summary.append(f"| {system}: {reason} | {w} |" + " — |" * 7)
                continue
            rps = median(g, "rps")
            vs_haproxy = rps / base["haproxy"]["rps"] if "haproxy" in base and rps else None
            vs_direct = rps / base["direct"]["rps"] if "direct" in base and rps else None
            p50, p99 = median(g, "fr_p50_us"), median(g, "fr_p99_us")
            if system != "direct" and "direct" in base and p50 is not None:
                added = "{:+.3f} / {:+.3f}".format(
                    ms(p50 - base["direct"]["fr_p50"]), ms(p99 - base["direct"]["fr_p99"]))
            else:
                added = "—"
            cpu = median(g, "cpu_s_per_1k")
            # For "direct" there is no proxy: its CPU and RSS are the origin nginx's, for scale.
            cpu_text = fmt(cpu, "{:.4f}")
            if system == "direct" and cpu is not None:
                cpu_text += " (origin)"
            rss_idle, rss_load = median(g, "rss_idle_kb"), median(g, "rss_load_kb")
            summary.append(
                f"| {system} | {w} | {fmt(rps, '{:,.0f}')} | {fmt(vs_haproxy, '{:.2f}')} "
                f"| {fmt(vs_direct, '{:.2f}')} | {fmt(ms(p50), '{:.3f}')} / {fmt(ms(p99), '{:.3f}')} "
                f"| {added} | {cpu_text} "
                f"| {fmt(rss_idle and rss_idle / 1024, '{:.1f}')} / "
                f"{fmt(rss_load and rss_load / 1024, '{:.1f}')} |")
            rounds = ", ".join(f"{float(r['rps']):,.0f}" for r in g)
            errors = sum(int(r["errors"]) + int(r["fr_errors"]) for r in g)
            detail.append(
                f"| {system} | {w} | {rounds} "
                f"| {fmt(ms(median(g, 'p50_us')), '{:.3f}')} / "
                f"{fmt(ms(median(g, 'p90_us')), '{:.3f}')} / "
                f"{fmt(ms(median(g, 'p99_us')), '{:.3f}')} "
                f"| {fmt(median(g, 'fr_rps'), '{:,.0f}')} "
                f"| {fmt(ms(median(g, 'fr_p90_us')), '{:.3f}')} | {errors} |")
    print("\n".join(summary))
    print()
    print("Per round and at saturation:")
    print()
    print("\n".join(detail))


if __name__ == "__main__":
    main()
