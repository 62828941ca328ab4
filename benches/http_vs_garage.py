#!/usr/bin/env python3
"""Shoal's S3 front door beside Garage 2.5 on this machine, in one run (issue #12's benchmark; a
measurement, never a test). `just bench-http` builds Shoal in release mode and runs it.

Both sides get the same workload from the same code: the peer tool `garage-bench` (by default
/work/shared/tools/garage-bench; env GARAGE_BENCH) is loaded as a module; its Garage cluster
(`Cluster`), boto3 client settings (`make_client`), thread pool (`run_parallel`, 8 threads, one
client each, spread over the nodes' endpoints) and decommission run (`decomm`) are used as they
are, and its data-path workload is repeated here for every system alike:

  DATA PATH  PUT then GET of N x 4 KiB and N x 1 MiB objects (fresh random payloads per round),
             median of the rounds; the clusters run side by side and take turns round by round,
             so that the machine's other load falls on all alike. Garage: 4 nodes, replication factor 1, each serving S3 (run
             stock, and with TCP_NODELAY through an LD_PRELOAD shim: Garage 2.5 leaves Nagle
             on). Shoal: 1 proxy + 4 targets (one mountpath each), auth on with a cluster S3
             key (SigV4 checked, as Garage does), S3 on each target's --listen port; the 8
             clients spread over the 4 targets as Garage's over its 4 nodes.
  DECOMMISSION  1024 x 1 MiB (1 GiB) loaded through S3, then one of the 4 storage nodes leaves.
             Garage: `layout remove` + `layout apply`, until its own done signal ('default':
             metadata synced and the old node's data dir empty, which waits out its fixed
             600 s block GC delay; 'fast': until every block is on a remaining node and the
             metadata synced, with rpc_timeout 5 s). Shoal: `nodectl cluster add-remove-nodes
             decommission`, until the rebalance has ended and the node is out of the map.
             Then the victim is stopped and every object read back through the remaining
             nodes, MD5 checked. Each side also times `cp -r` + `sync` of the victim's data.

Prints a table (absolute figures, and Shoal/Garage per line: throughput ratios for the data
path, Garage time / Shoal time for the decommission, so > 1.0 means Shoal is ahead) and writes
everything to target/bench-http.json.

Usage: benches/http_vs_garage.py [--n4k 5000] [--n1m 300] [--rounds 3]
           [--garage-decomm fast,default] [--objects 1024] [--skip-garage] [--skip-shoal]
           [--skip-datapath] [--skip-decomm] [--no-nodelay] [--no-stock] [--shoal-auth on|off]
           [--shoal-endpoints targets|proxy|all]
Env: GARAGE_BENCH (the peer tool), GARAGE_BIN and GARAGE_BENCH_VENV (as the peer tool reads
them), SHOAL_BIN_DIR (noded and nodectl; default target/release).
Takes ~25 min with the defaults (Garage's 'default' decommission alone waits ~11 min).
"""
import argparse
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GARAGE_BENCH = os.environ.get("GARAGE_BENCH", "/work/shared/tools/garage-bench")
VENV = os.environ.get("GARAGE_BENCH_VENV", os.path.join(ROOT, "target", "bench-venv"))
# The client both sides are driven with: the boto3 the HTTP tests pin.
PINNED = ["boto3==1.44.2", "botocore==1.44.8", "s3transfer==0.19.3"]

# Into the venv first: the peer tool re-executes itself into GARAGE_BENCH_VENV when it is
# imported from another interpreter.
os.environ["GARAGE_BENCH_VENV"] = VENV
if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    if subprocess.run([py, "-c", "import boto3"], stderr=subprocess.DEVNULL).returncode != 0:
        subprocess.check_call([os.path.join(VENV, "bin", "pip"), "install", "-q", *PINNED])
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


def load_peer():
    loader = importlib.machinery.SourceFileLoader("garage_bench", GARAGE_BENCH)
    spec = importlib.util.spec_from_loader("garage_bench", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


gb = load_peer()
log = gb.log
MB = gb.MB
BIN = os.environ.get("SHOAL_BIN_DIR", os.path.join(ROOT, "target", "release"))
STARTED = []  # every Popen started here; stopped by PID at exit


# ---------------------------------------------------------------- a Shoal cluster


class ShoalNode:
    def __init__(self, cluster, name, role, port):
        self.cluster, self.name, self.role, self.port = cluster, name, role, port
        self.dir = os.path.join(cluster.root, name)
        self.data = os.path.join(self.dir, "mp0")  # a target's one mountpath
        self.proc = None
        self.id = None

    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, join=None):
        os.makedirs(self.dir, exist_ok=True)
        cmd = [os.path.join(BIN, "noded"), "--role", self.role, "--listen",
               f"127.0.0.1:{self.port}", "--data-dir", self.dir, "--config", self.cluster.cfg,
               "--auth-secret-file", self.cluster.secret_file]
        if self.role == "target":
            cmd += ["--mountpath", self.data]
        cmd += ["--join", join] if join else ["--primary"]
        logf = open(os.path.join(self.cluster.root, f"{self.name}.log"), "w")
        env = dict(os.environ, SHOAL_LOG=os.environ.get("SHOAL_BENCH_LOG", "warn"))
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        STARTED.append(self.proc)

    def stop(self):
        if self.proc:
            gb.stop_proc(self.proc)


class Shoal:
    """1 proxy + `targets` targets on 127.0.0.1, auth on, one S3 key, bucket `bench`."""

    def __init__(self, root, targets=4, auth=True):
        self.root = root
        os.makedirs(root)
        self.auth = auth
        self.cfg = os.path.join(root, "cluster.toml")
        self.secret_file = os.path.join(root, "secret")
        secret = os.urandom(24).hex()
        with open(self.secret_file, "w") as f:
            f.write(secret)
        os.chmod(self.secret_file, 0o600)
        with open(self.cfg, "w") as f:
            f.write(f"[cluster.auth]\nenabled = {'true' if auth else 'false'}\n")
        taken = set()
        self.proxy = ShoalNode(self, "proxy0", "proxy", gb.free_port(taken))
        self.targets = [ShoalNode(self, f"target{i}", "target", gb.free_port(taken))
                        for i in range(targets)]
        self.token = None
        self.key_id = self.secret = None

    @property
    def nodes(self):
        return [self.proxy] + self.targets

    def nodectl(self, *args, check=True, timeout=120):
        cmd = [os.path.join(BIN, "nodectl"), "--endpoint", f"127.0.0.1:{self.proxy.port}"]
        if self.token:
            cmd += ["--token", self.token]
        r = subprocess.run(cmd + [str(a) for a in args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"nodectl {' '.join(map(str, args))} failed rc={r.returncode}: "
                               f"{r.stderr.strip()[-800:]} {r.stdout.strip()[-400:]}")
        return r.stdout

    def show(self):
        return json.loads(self.nodectl("show", "cluster", "--json", timeout=30))

    def start(self):
        tok = subprocess.run([os.path.join(BIN, "nodectl"), "auth", "token", "--secret-file",
                              self.secret_file, "--admin", "--json"], stdout=subprocess.PIPE,
                             text=True, check=True)
        self.token = json.loads(tok.stdout)["token"]
        self.proxy.start()
        self.wait(lambda s: s["primary"], "the primary")
        for t in self.targets:
            t.start(join=f"127.0.0.1:{self.proxy.port}")
        self.wait(lambda s: sum(1 for t in s["targets"] if t["status"] == "online")
                  == len(self.targets), "every target online")
        self.nodectl("wait", "rebalance", "--timeout", "60")
        for t in self.show()["targets"]:
            for n in self.targets:
                if t["addr"] == f"127.0.0.1:{n.port}":
                    n.id = t["id"]
        self.nodectl("bucket", "create", gb.BUCKET)
        if self.auth:
            made = json.loads(self.nodectl("auth", "s3-key", "create", "--admin", "--json"))
            self.key_id = made["created"]["access_key"]
            self.secret = made["created"]["secret_key"]
        else:
            self.key_id, self.secret = "anykey", "anysecret"

    def wait(self, cond, what, timeout=60):
        deadline = time.time() + timeout
        while True:
            for n in self.nodes:
                if n.proc and n.proc.poll() is not None:
                    raise RuntimeError(f"{n.name} exited: see {self.root}/{n.name}.log")
            try:
                if cond(self.show()):
                    return
            except (RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired):
                pass
            if time.time() > deadline:
                raise RuntimeError(f"Shoal: no {what} after {timeout} s")
            time.sleep(0.2)

    def stop(self):
        for n in self.nodes:
            n.stop()


def dir_bytes(d):
    total = 0
    for dp, _dn, fn in os.walk(d):
        for f in fn:
            try:
                total += os.path.getsize(os.path.join(dp, f))
            except OSError:
                pass
    return total


def shoal_endpoints(cl, which):
    return {"targets": cl.targets, "proxy": [cl.proxy], "all": cl.nodes}[which]


# ---------------------------------------------------------------- the data path, interleaved


def datapath(root, a):
    """gb.datapath's workload on every system at once: the clusters run side by side and take
    turns round by round (the order rotating), so that the machine's other load falls on all
    of them alike. Returns {system: {put4k_obj_s, get4k_obj_s, put1m_MBps, ...}}."""
    systems = []  # (name, cluster, clients)
    try:
        if not a.skip_garage:
            variants = [("garage", None)] if not a.no_stock else []
            so = None if a.no_nodelay else gb.build_nodelay(root)
            if so:
                variants.append(("garage_nodelay", so))
            for name, preload in variants:
                g = gb.Cluster(os.path.join(root, name), preload=preload)
                systems.append((name, g, None))
                g.start()
                systems[-1] = (name, g, gb.clients_for(g, g.nodes))
        if not a.skip_shoal:
            sh = Shoal(os.path.join(root, "shoal"), auth=a.shoal_auth == "on")
            systems.append(("shoal", sh, None))
            sh.start()
            systems[-1] = ("shoal", sh, gb.clients_for(sh, shoal_endpoints(sh, a.shoal_endpoints)))
        for _name, _cl, clients in systems:
            gb.run_parallel(clients, 64, lambda c, i: c.put_object(
                Bucket=gb.BUCKET, Key=f"warm/{i}", Body=b"x" * 4096))
        res = {name: {} for name, _, _ in systems}
        for label, size, n in (("4k", 4096, a.n4k), ("1m", 1 << 20, a.n1m)):
            rates = {name: ([], []) for name, _, _ in systems}
            for r in range(a.rounds):
                k = r % len(systems)
                for name, _cl, clients in systems[k:] + systems[:k]:
                    payloads = [os.urandom(size) for _ in range(n)]
                    keys = [f"dp/r{r}/{label}/{i:06d}" for i in range(n)]
                    dt, err = gb.run_parallel(clients, n, lambda c, i: c.put_object(
                        Bucket=gb.BUCKET, Key=keys[i], Body=payloads[i]))
                    if err:
                        raise RuntimeError(f"{name}: PUT {label} round {r}: {len(err)} errors, "
                                           f"e.g. {err[:2]}")

                    def get(c, i):
                        body = c.get_object(Bucket=gb.BUCKET, Key=keys[i])["Body"].read()
                        if len(body) != size:
                            raise RuntimeError(f"short read {len(body)}")
                    dt2, err = gb.run_parallel(clients, n, get)
                    if err:
                        raise RuntimeError(f"{name}: GET {label} round {r}: {len(err)} errors, "
                                           f"e.g. {err[:2]}")
                    rates[name][0].append(n / dt)
                    rates[name][1].append(n / dt2)
                    log(f"  round {r + 1} {name:<15} put {label} {n / dt:8.1f} obj/s "
                        f"{n * size / dt / MB:7.1f} MB/s | get {label} {n / dt2:8.1f} obj/s "
                        f"{n * size / dt2 / MB:7.1f} MB/s")
                    del payloads
            for name, (puts, gets) in rates.items():
                out = res[name]
                out[f"put{label}_obj_s"] = statistics.median(puts)
                out[f"get{label}_obj_s"] = statistics.median(gets)
                out[f"put{label}_MBps"] = out[f"put{label}_obj_s"] * size / MB
                out[f"get{label}_MBps"] = out[f"get{label}_obj_s"] * size / MB
        return res
    finally:
        for _name, cl, _ in systems:
            cl.stop()
        if not a.keep:
            for _name, cl, _ in systems:
                shutil.rmtree(cl.root, ignore_errors=True)


# ---------------------------------------------------------------- the decommission


def shoal_decomm(root, a):
    """gb.decomm's workload (1024 x 1 MiB, one of 4 storage nodes leaves), on Shoal."""
    size, count = 1 << 20, a.objects
    log(f"\n== Shoal decommission: {count} x {size} B, 1 proxy + 4 targets")
    cl = Shoal(os.path.join(root, "shoal-decomm"), auth=a.shoal_auth == "on")
    out = {"objects": count, "obj_bytes": size}
    try:
        cl.start()
        md5 = [None] * count
        keys = [f"d/{i:06d}" for i in range(count)]

        def put(c, i):
            body = os.urandom(size)
            md5[i] = hashlib.md5(body).hexdigest()
            c.put_object(Bucket=gb.BUCKET, Key=keys[i], Body=body)
        dt, err = gb.run_parallel(gb.clients_for(cl, shoal_endpoints(cl, a.shoal_endpoints)),
                                  count, put)
        if err:
            raise RuntimeError(f"load: {len(err)} errors, e.g. {err[:2]}")
        log(f"  loaded {count} objects, {count * size / MB:.1f} MB in {dt:.1f} s")
        subprocess.run(["sync"])
        time.sleep(2)
        for n in cl.targets:
            log(f"  {n.name} (t[{n.id}]): {dir_bytes(n.data) / MB:.1f} MB in its mountpath")
        victim, rest = cl.targets[-1], cl.targets[:-1]
        vbytes = dir_bytes(victim.data)
        out["victim_bytes"] = vbytes

        subprocess.run(["sync"])
        cpdst = os.path.join(cl.root, "cp-baseline")
        t = time.perf_counter()
        subprocess.run(["cp", "-r", victim.data, cpdst], check=True)
        subprocess.run(["sync"], check=True)
        out["cp_s"] = time.perf_counter() - t
        shutil.rmtree(cpdst)
        subprocess.run(["sync"])
        log(f"  baseline cp -r + sync of {victim.name}'s mountpath ({vbytes / MB:.1f} MB): "
            f"{out['cp_s']:.3f} s")

        t0 = time.perf_counter()
        started = json.loads(cl.nodectl("cluster", "add-remove-nodes", "decommission", victim.id,
                                        "--yes", "--json"))
        out["command_s"] = time.perf_counter() - t0
        out["rebalance_id"] = reb_id = started.get("rebalance_id")
        firsts = {}
        while True:
            el = time.perf_counter() - t0
            try:
                s = cl.show()
                reb = json.loads(cl.nodectl("show", "rebalance", "--json", timeout=30))
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                log(f"  status query failed: {e}")
                s, reb = None, None
            if s is not None:
                gone = all(t["id"] != victim.id for t in s["targets"])
                ended = reb is not None and reb.get("id") == reb_id and reb.get("state") != "running"
                if gone and "out_of_map" not in firsts:
                    firsts["out_of_map"] = el
                if ended and "rebalance_ended" not in firsts:
                    firsts["rebalance_ended"] = el
                if gone and ended:
                    break
            if victim.proc.poll() is not None and "victim_exited" not in firsts:
                firsts["victim_exited"] = el
            if el > a.max_wait:
                out["timeout"] = True
                log(f"  TIMEOUT after {el:.0f} s")
                break
            time.sleep(0.1)
        out["done_s"] = time.perf_counter() - t0
        out.update({f"t_{k}": v for k, v in firsts.items()})
        left = dir_bytes(victim.data)
        log(f"  done in {out['done_s']:.2f} s ({', '.join(f'{k} {v:.2f} s' for k, v in firsts.items())});"
            f" {left / MB:.1f} MB left in the victim's mountpath")
        for n in rest:
            log(f"  {n.name}: {dir_bytes(n.data) / MB:.1f} MB")

        victim.stop()
        urls = rest

        def get(c, i):
            body = c.get_object(Bucket=gb.BUCKET, Key=keys[i])["Body"].read()
            if hashlib.md5(body).hexdigest() != md5[i]:
                raise RuntimeError("checksum mismatch")
        vt, err = gb.run_parallel(gb.clients_for(cl, urls), count, get)
        out["verify_ok"] = count - len(err)
        out["verify_s"] = vt
        log(f"  victim stopped; read back {count - len(err)}/{count} objects intact through the "
            f"remaining targets in {vt:.1f} s" + (f"; errors e.g. {err[:2]}" if err else ""))
        out["MBps"] = vbytes / out["done_s"] / MB
        out["vs_cp"] = out["done_s"] / out["cp_s"] if out["cp_s"] else None
    finally:
        cl.stop()
        if not a.keep:
            shutil.rmtree(cl.root, ignore_errors=True)
    return out


# ---------------------------------------------------------------- report


def table(res):
    g, gn, s = res.get("garage", {}), res.get("garage_nodelay", {}), res.get("shoal", {})
    gd = {d["variant"]: d for d in res.get("garage_decomm", [])}
    sd = res.get("shoal_decomm", {})
    rows = []
    for key, what, unit in (("put4k_obj_s", "S3 PUT 4 KiB", "obj/s"),
                            ("get4k_obj_s", "S3 GET 4 KiB", "obj/s"),
                            ("put1m_MBps", "S3 PUT 1 MiB", "MB/s"),
                            ("get1m_MBps", "S3 GET 1 MiB", "MB/s")):
        best = max([v for v in (g.get(key), gn.get(key)) if v is not None], default=None)
        sv = s.get(key)
        rows.append((what, unit, g.get(key), gn.get(key), best, sv,
                     sv / best if sv and best else None))
    for variant in ("fast", "default", "tuned"):
        d = gd.get(variant)
        if d is None:
            continue
        gv, sv = d.get("done_s"), sd.get("done_s")
        rows.append((f"decommission 1 GiB vs '{variant}'", "s", gv, None, gv, sv,
                     gv / sv if gv and sv else None))
    res["table"] = [dict(zip(("line", "unit", "garage", "garage_nodelay", "garage_best",
                              "shoal", "ratio"), r)) for r in rows]

    def f(v):
        return "-" if v is None else f"{v:.1f}"
    log("")
    log(f"{'line':<34} {'unit':<6} {'garage':>9} {'g+nodelay':>10} {'shoal':>9} {'ratio':>7}")
    for what, unit, gv, gnv, _best, sv, ratio in rows:
        r = "-" if ratio is None else f"{ratio:.2f}x"
        log(f"{what:<34} {unit:<6} {f(gv):>9} {f(gnv):>10} {f(sv):>9} {r:>7}")
    log("ratio: Shoal / the better Garage figure (throughput); Garage s / Shoal s (decommission)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n4k", type=int, default=5000)
    ap.add_argument("--n1m", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--objects", type=int, default=1024, help="1 MiB objects to decommission")
    ap.add_argument("--garage-decomm", default="fast,default")
    ap.add_argument("--skip-garage", action="store_true")
    ap.add_argument("--skip-shoal", action="store_true")
    ap.add_argument("--skip-datapath", action="store_true")
    ap.add_argument("--skip-decomm", action="store_true")
    ap.add_argument("--no-nodelay", action="store_true",
                    help="skip the Garage data path with TCP_NODELAY")
    ap.add_argument("--no-stock", action="store_true",
                    help="skip the stock Garage data path (Nagle on)")
    ap.add_argument("--shoal-auth", choices=("on", "off"), default="on")
    ap.add_argument("--shoal-endpoints", choices=("targets", "proxy", "all"), default="targets")
    ap.add_argument("--max-wait", type=float, default=1500)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench-http.json"))
    a = ap.parse_args()
    # What the peer's functions read from their arguments.
    a.poll, a.print_every = 1.0, 15.0

    for b in ("noded", "nodectl"):
        if not a.skip_shoal and not os.access(os.path.join(BIN, b), os.X_OK):
            sys.exit(f"{BIN}/{b} missing: cargo build --release --bin noded --bin nodectl")
    if not a.skip_garage and not os.access(gb.GARAGE, os.X_OK):
        log(f"{gb.GARAGE} missing; building it (20-40 min on 2 cores): {' '.join(gb.BUILD)}")
        subprocess.check_call(gb.BUILD)

    root = tempfile.mkdtemp(prefix="bench-http-")

    def on_signal(_sig, _frm):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    res = {"params": {k: v for k, v in vars(a).items() if k != "out"},
           "threads": gb.THREADS, "started": time.time()}
    try:
        if not a.skip_datapath:
            log(f"== data path: {a.n4k} x 4 KiB and {a.n1m} x 1 MiB, {gb.THREADS} threads, "
                f"{a.rounds} rounds (median); Garage stock and with TCP_NODELAY, Shoal (auth "
                f"{a.shoal_auth}, S3 on the {a.shoal_endpoints}), taking turns")
            res.update(datapath(root, a))
        if not a.skip_decomm:
            if not a.skip_shoal:
                res["shoal_decomm"] = shoal_decomm(root, a)
            if not a.skip_garage:
                res["garage_decomm"] = []
                for v in [x for x in a.garage_decomm.split(",") if x]:
                    try:
                        res["garage_decomm"].append(gb.decomm(root, v, a))
                    except Exception as e:  # noqa: BLE001 - report and go on
                        log(f"  Garage variant {v} failed: {e}")
    finally:
        for p in STARTED + gb.STARTED:
            gb.stop_proc(p)
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log("kept " + root)
        table(res)
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)
        log(f"written to {a.out}")


if __name__ == "__main__":
    main()
