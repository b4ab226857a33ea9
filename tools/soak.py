#!/usr/bin/env python3
"""Soak and chaos run of a small Weft mesh on loopback (tools/soak.sh is the entry point).

The mesh: weft-cp (config directory source), N weft-proxy sidecars (one worker each, own
loopback address) and M weft-test-upstream instances of Service "echo" behind a Route with
retries. While a steady load goes through every sidecar:
  - the config file changes 10 times a second (an endpoint weight), so EDS pushes never stop;
  - every --fault-every seconds one fault, in turn: an upstream is SIGKILLed and restarted on
    its port after --down seconds, or weft-cp is SIGKILLed and restarted.
Recorded: every request's outcome (failures with time and kind), RSS and open fds of every
process every --sample seconds, and per fault the time to converge: an upstream is back when it
serves requests again; weft-cp is back when every sidecar is connected and in sync again.
Writes summary.json, samples.csv and failures.csv to --out and prints a summary. Exits 1 when
a goal is missed (see GOALS)."""
import argparse
import csv
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

GOALS = {
    "max_failed_fraction": 0.0,  # clients of the retried route: no failed request
    "max_converge_s": 10.0,  # every fault converges within this
    "max_fd_growth": 8,  # open fds at the end vs after warm-up, per long-lived process
    "max_rss_drift": 0.05,  # RSS at the end vs after warm-up, for processes never restarted
}


def now():
    return time.monotonic()


def wait_file(path, timeout=10.0):
    end = now() + timeout
    while now() < end:
        try:
            with open(path) as f:
                data = f.read()
            if data.strip():
                return json.loads(data)
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{path} never appeared")


def http_get(port, path, host="127.0.0.1", timeout=2.0, headers=None):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def proc_stats(pid):
    rss = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    return rss, fds


class Mesh:
    def __init__(self, args):
        self.args = args
        self.bin = os.path.abspath(args.bin)
        self.work = os.path.abspath(args.out)
        self.config_dir = os.path.join(self.work, "config")
        os.makedirs(self.config_dir, exist_ok=True)
        self.procs = {}  # name -> Popen
        self.restarts = {}  # name -> count
        self.upstream_ports = []
        self.cp_ports = None
        self.sidecar_admin = []
        self.weight = 1
        self.lock = threading.Lock()

    def spawn(self, name, argv):
        log = open(os.path.join(self.work, name + ".log"), "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.procs[name] = p
        return p

    def start_upstream(self, i, port=0):
        name = f"echo-{i}"
        ready = os.path.join(self.work, name + ".json")
        if os.path.exists(ready):
            os.unlink(ready)
        self.spawn(name, [f"{self.bin}/weft-test-upstream", "--name", name, "--address",
                          f"127.0.0.1:{port}", "--ready-file", ready])
        return wait_file(ready)["port"]

    def write_config(self):
        # Rewritten in place of a temp file, as editors and ConfigMaps do.
        eps = []
        for i, port in enumerate(self.upstream_ports):
            w = self.weight if i == 0 else 1
            eps.append(f"- {{address: 127.0.0.1, port: {port}, weight: {w}}}")
        text = ("kind: Service\nname: echo\nports:\n- {name: http, port: 80, protocol: HTTP}\n"
                "endpoints:\n" + "\n".join(eps) + "\n---\n"
                "kind: Route\nname: echo\nhosts: [echo]\nrules:\n- destinations: [{service: echo}]\n"
                "  timeout: 5s\n"
                "  retries: {attempts: 3, retry_on: [connect-failure, reset, 5xx]}\n")
        tmp = os.path.join(self.config_dir, ".echo.yaml.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, os.path.join(self.config_dir, "echo.yaml"))

    def start_cp(self):
        ready = os.path.join(self.work, "cp.json")
        if os.path.exists(ready):
            os.unlink(ready)
        if self.cp_ports:
            xds, admin, api = self.cp_ports["xds_port"], self.cp_ports["admin_port"], \
                self.cp_ports["api_port"]
        else:
            xds = admin = api = 0
        self.spawn("weft-cp", [f"{self.bin}/weft-cp", "--config-dir", self.config_dir,
                               "--xds-address", f"127.0.0.1:{xds}",
                               "--admin-address", f"127.0.0.1:{admin}",
                               "--api-address", f"127.0.0.1:{api}", "--ready-file", ready,
                               "--log-level", "warning"])
        self.cp_ports = wait_file(ready)

    def start_sidecar(self, i):
        name = f"sidecar-{i}"
        boot = os.path.join(self.work, name + ".yaml")
        with open(boot, "w") as f:
            f.write(f"node: {{ id: {name}, cluster: frontend }}\n"
                    f"xds: {{ servers: [\"127.0.0.1:{self.cp_ports['xds_port']}\"], mode: DELTA }}\n"
                    f"admin: {{ address: \"127.0.0.1:0\" }}\nconcurrency: 1\n"
                    f"bind_address: 127.0.0.{i + 1}\n")
        ready = os.path.join(self.work, name + ".json")
        self.spawn(name, [f"{self.bin}/weft-proxy", "--bootstrap", boot, "--ready-file", ready,
                          "--log-level", "warning"])
        return wait_file(ready)["admin_port"]

    def start(self):
        for i in range(self.args.upstreams):
            self.upstream_ports.append(self.start_upstream(i + 1))
        self.write_config()
        self.start_cp()
        for i in range(self.args.sidecars):
            self.sidecar_admin.append(self.start_sidecar(i))
        end = now() + 15
        while now() < end:
            if all(self.routes_ready(i) for i in range(self.args.sidecars)):
                return
            time.sleep(0.1)
        raise RuntimeError("the sidecars never routed to echo")

    def routes_ready(self, i):
        try:
            status, _ = http_get(15001, "/", host=f"127.0.0.{i + 1}", headers={"Host": "echo"})
            return status == 200
        except OSError:
            return False

    def in_sync(self):
        try:
            status, body = http_get(self.cp_ports["admin_port"], "/debug/proxies", timeout=1)
        except OSError:
            return False
        if status != 200:
            return False
        data = json.loads(body)
        proxies = data.get("proxies", data) if isinstance(data, dict) else data
        synced = [p for p in proxies if isinstance(p, dict) and p.get("in_sync")]
        return len(synced) >= self.args.sidecars

    def upstream_count(self, i):
        try:
            status, body = http_get(self.upstream_ports[i], "/__count", timeout=1)
            return int(body) if status == 200 else -1
        except (OSError, ValueError):
            return -1

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


class Load:
    """Closed-loop clients, each on its own keep-alive connection to one sidecar, paced to
    --rps in total."""

    def __init__(self, mesh, args):
        self.mesh = mesh
        self.args = args
        self.stop = threading.Event()
        self.ok = 0
        self.failures = []  # (t, sidecar, kind)
        self.lock = threading.Lock()
        self.t0 = now()

    def client(self, k):
        sidecar = k % self.args.sidecars
        host = f"127.0.0.{sidecar + 1}"
        interval = self.args.clients / self.args.rps
        conn = None
        next_t = now()
        while not self.stop.is_set():
            next_t += interval
            kind = None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, 15001, timeout=10)
                conn.request("GET", "/", headers={"Host": "echo"})
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    kind = f"http {r.status}"
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                kind = type(e).__name__
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                if kind is None:
                    self.ok += 1
                else:
                    self.failures.append((round(now() - self.t0, 3), sidecar, kind))
            delay = next_t - now()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = now()

    def start(self):
        self.threads = [threading.Thread(target=self.client, args=(k,), daemon=True)
                        for k in range(self.args.clients)]
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(15)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--upstreams", type=int, default=3)
    ap.add_argument("--sidecars", type=int, default=3)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--rps", type=float, default=300)
    ap.add_argument("--config-hz", type=float, default=10)
    ap.add_argument("--fault-every", type=float, default=30)
    ap.add_argument("--down", type=float, default=2)
    ap.add_argument("--sample", type=float, default=2)
    ap.add_argument("--max-failed-fraction", type=float, default=GOALS["max_failed_fraction"],
                    help="goal for failed requests (default: none may fail)")
    args = ap.parse_args()
    GOALS["max_failed_fraction"] = args.max_failed_fraction

    mesh = Mesh(args)
    samples = []
    faults = []
    try:
        mesh.start()
        load = Load(mesh, args)
        load.start()
        stop = threading.Event()

        def config_changer():
            period = 1.0 / args.config_hz
            n = 0
            while not stop.is_set():
                with mesh.lock:
                    mesh.weight = 1 + n % 5
                    mesh.write_config()
                n += 1
                stop.wait(period)

        changer = threading.Thread(target=config_changer, daemon=True)
        changer.start()

        t0 = load.t0
        next_sample = now()
        next_fault = now() + args.warmup + args.fault_every / 2
        fault_kinds = ["upstream", "weft-cp"]
        fault_n = 0
        end = t0 + args.seconds
        while now() < end:
            if now() >= next_sample:
                row = {"t": round(now() - t0, 1)}
                for name, p in mesh.procs.items():
                    st = proc_stats(p.pid)
                    if st:
                        row[name + ".rss_kb"], row[name + ".fds"] = st
                with load.lock:
                    row["ok"], row["failed"] = load.ok, len(load.failures)
                samples.append(row)
                next_sample += args.sample
            if now() >= next_fault and now() + args.down + 12 < end:
                kind = fault_kinds[fault_n % 2]
                fault = {"kind": kind, "t": round(now() - t0, 2)}
                if kind == "upstream":
                    i = fault_n // 2 % args.upstreams
                    name = f"echo-{i + 1}"
                    fault["target"] = name
                    mesh.procs[name].kill()
                    mesh.procs[name].wait()
                    time.sleep(args.down)
                    restarted = now()
                    mesh.start_upstream(i + 1, mesh.upstream_ports[i])
                    base = mesh.upstream_count(i)
                    while now() - restarted < 30 and mesh.upstream_count(i) <= base:
                        time.sleep(0.05)
                    fault["converge_s"] = round(now() - restarted, 3)
                else:
                    fault["target"] = "weft-cp"
                    mesh.procs["weft-cp"].kill()
                    mesh.procs["weft-cp"].wait()
                    time.sleep(args.down)
                    restarted = now()
                    mesh.start_cp()
                    while now() - restarted < 30 and not mesh.in_sync():
                        time.sleep(0.05)
                    fault["converge_s"] = round(now() - restarted, 3)
                mesh.restarts[fault["target"]] = mesh.restarts.get(fault["target"], 0) + 1
                faults.append(fault)
                print(f"soak: t={fault['t']:.0f}s {kind} {fault['target']} killed, back in "
                      f"{fault['converge_s']}s", flush=True)
                fault_n += 1
                next_fault = now() + args.fault_every
            time.sleep(0.05)
        stop.set()
        load.join()
        crashed = [n for n, p in mesh.procs.items() if p.poll() is not None]
    finally:
        mesh.stop()

    # Summaries: per process, the first sample after warm-up against the last.
    names = sorted({k.rsplit(".", 1)[0] for s in samples for k in s if k.endswith(".rss_kb")})
    base = next((s for s in samples if s["t"] >= args.warmup), samples[0])
    last = samples[-1]
    processes = {}
    for n in names:
        series = [s[n + ".rss_kb"] for s in samples if n + ".rss_kb" in s]
        p = {"restarts": mesh.restarts.get(n, 0),
             "rss_kb_start": base.get(n + ".rss_kb"), "rss_kb_end": last.get(n + ".rss_kb"),
             "rss_kb_max": max(series) if series else None,
             "fds_start": base.get(n + ".fds"), "fds_end": last.get(n + ".fds"),
             "fds_max": max(s.get(n + ".fds", 0) for s in samples)}
        if p["rss_kb_start"] and p["rss_kb_end"]:
            p["rss_drift"] = round(p["rss_kb_end"] / p["rss_kb_start"] - 1, 4)
        processes[n] = p
    total = load.ok + len(load.failures)
    kinds = {}
    for _, _, k in load.failures:
        kinds[k] = kinds.get(k, 0) + 1
    summary = {"seconds": args.seconds, "rps_target": args.rps, "requests": total,
               "failed": len(load.failures), "failure_kinds": kinds,
               "config_changes_per_s": args.config_hz, "faults": faults,
               "processes": processes, "crashed": crashed, "goals": GOALS}
    missed = []
    if total == 0 or len(load.failures) / total > GOALS["max_failed_fraction"]:
        missed.append(f"{len(load.failures)} of {total} requests failed")
    for f in faults:
        if f["converge_s"] > GOALS["max_converge_s"]:
            missed.append(f"{f['kind']} {f['target']} took {f['converge_s']}s to converge")
    for n, p in processes.items():
        if p["fds_end"] is not None and p["fds_start"] is not None and \
                p["fds_end"] - p["fds_start"] > GOALS["max_fd_growth"]:
            missed.append(f"{n}: fds {p['fds_start']} -> {p['fds_end']}")
        if p["restarts"] == 0 and p.get("rss_drift", 0) > GOALS["max_rss_drift"]:
            missed.append(f"{n}: RSS {p['rss_kb_start']} -> {p['rss_kb_end']} kB")
    unexpected = [n for n in crashed]
    if unexpected:
        missed.append("exited during the run: " + ", ".join(unexpected))
    summary["missed"] = missed
    with open(os.path.join(mesh.work, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(mesh.work, "failures.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t", "sidecar", "kind"])
        w.writerows(load.failures)
    keys = sorted({k for s in samples for k in s}, key=lambda k: (k != "t", k))
    with open(os.path.join(mesh.work, "samples.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(samples)

    print(f"soak: {total} requests in {args.seconds:.0f}s, {len(load.failures)} failed {kinds}")
    for f in faults:
        print(f"soak:   fault at {f['t']:.0f}s: {f['kind']} {f['target']}, converged in "
              f"{f['converge_s']}s")
    for n, p in processes.items():
        print(f"soak:   {n}: RSS {p['rss_kb_start']} -> {p['rss_kb_end']} kB (max "
              f"{p['rss_kb_max']}), fds {p['fds_start']} -> {p['fds_end']} (max {p['fds_max']}),"
              f" restarts {p['restarts']}")
    for m in missed:
        print(f"soak: MISSED: {m}")
    print(f"soak: results in {mesh.work}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
