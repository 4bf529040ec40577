"""Callbacks per second and latency through gunicorn on 127.0.0.1, next to a bare Flask endpoint.

Usage: .venv/bin/python bench/callbacks.py [--seconds 10] [--workers 4] [--url sqlite:///...]
Prints, for a bare endpoint, an encrypted WeCom text message ("积分" from a bound employee) and a
signed DingTalk robot message: max throughput with 8 client threads, then p50/p99 at 100 callbacks/s; with
wrk, also the minimal endpoint of bench/wsgi.py (verify, decrypt, one durable insert) as the yardstick.
"""
from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e import signing  # noqa: E402

CONF = {"wecom": {"token": "benchToken", "key": "pointsbotBenchWeComEncodingAesKey012345678A", "corp": "wwbench"},
        "dingtalk": {"secret": "bench-dingtalk-secret"}}


def write_config(path: Path, db_url: str, port: int) -> None:
    path.write_text(f"""
[server]
port = {port}
log_level = "WARNING"
[database]
url = "{db_url}"
sqlite_synchronous = "FULL"
[wecom]
enabled = true
corp_id = "{CONF['wecom']['corp']}"
agent_id = 1000002
secret = "s"
token = "{CONF['wecom']['token']}"
encoding_aes_key = "{CONF['wecom']['key']}"
api_base = "http://127.0.0.1:9/unused"
[dingtalk]
enabled = true
app_key = "dingbench"
app_secret = "{CONF['dingtalk']['secret']}"
token = "t123"
aes_key = "pointsbotBenchDingTalkEventAesKey012345678B"
api_base = "http://127.0.0.1:9/unused"
oapi_base = "http://127.0.0.1:9/unused"
[[catalog]]
sku = "card100"
name = "100元购物卡"
cost = 1000
""", encoding="utf-8")


@contextmanager
def gunicorn(env: dict[str, str], port: int, workers: int) -> Iterator[None]:
    """The app (bench/wsgi.py) under gunicorn on 127.0.0.1:``port``, up and answering, stopped afterwards."""
    server = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-w", str(workers), "-b",
                               f"127.0.0.1:{port}", "--log-level", "warning", "bench.wsgi:app"], env=env, cwd=ROOT)
    try:
        for _ in range(200):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/bare")
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.5)
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TEXT = "积分"


def make_requests(kind: str, n: int, start_id: int) -> list[tuple[str, str, bytes, dict[str, str]]]:
    out = []
    for i in range(n):
        if kind == "bare":
            out.append(("GET", "/bare", b"", {}))
        elif kind in ("wecom", "minimal"):
            ts = int(time.time())
            xml = signing.wecom_text_xml(f"user{i % 50}", CONF["wecom"]["corp"], TEXT, start_id + i, ts)
            q, b = signing.wecom_post(CONF["wecom"]["token"], CONF["wecom"]["key"], CONF["wecom"]["corp"], xml, ts)
            path = "/callback/wecom?" if kind == "wecom" else "/minimal?"
            out.append(("POST", path + urlencode(q), b, {}))
        else:
            ts = int(time.time() * 1000)
            body = signing.robot_body(f"user{i % 50}", TEXT, f"msg{start_id + i}")
            out.append(("POST", "/callback/dingtalk/robot", body, signing.robot_headers(CONF["dingtalk"]["secret"], ts)))
    return out


def run_load(port: int, reqs: list, threads: int, rate: float | None) -> tuple[float, list[float], int]:
    """Send all requests; with ``rate``, paced at that many per second overall."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    it = iter(enumerate(reqs))
    t0 = time.perf_counter()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while True:
            with lock:
                nxt = next(it, None)
            if nxt is None:
                break
            i, (method, path, body, headers) = nxt
            if rate:
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            start = time.perf_counter()
            try:
                conn.request(method, path, body=body or None, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except Exception:
                ok = False
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            with lock:
                lat.append((time.perf_counter() - start) * 1000)
                errors[0] += 0 if ok else 1

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0, lat, errors[0]


def wrk_run(port: int, kind: str, seconds: float, start_id: int, tmp: Path) -> tuple[float, str, str] | None:
    """Max throughput with wrk (C, 2 threads, 8 connections) replaying unique signed requests."""
    import shutil

    if shutil.which("wrk") is None or kind == "bare":
        return None
    reqs = make_requests(kind, int(1500 * seconds), start_id)
    f = tmp / f"{kind}.reqs"
    with f.open("w", encoding="utf-8") as out:
        for method, path, body, headers in reqs:
            out.write(f"{path}\t{headers.get('timestamp', '')}\t{headers.get('sign', '')}\t{body.decode()}\n")
    proc = subprocess.run(["wrk", "-t2", "-c8", f"-d{int(seconds)}s", "--latency", "-s", str(ROOT / "bench/replay.lua"),
                           f"http://127.0.0.1:{port}", "--", str(f), "2"], capture_output=True, text=True)
    out = proc.stdout
    rps = float(out.split("Requests/sec:")[1].split()[0])
    dist = out.split("Latency Distribution")[1]  # the "50%"/"99%" lines of --latency, not the stdev column
    p50 = dist.split("50%")[1].split()[0]
    p99 = dist.split("99%")[1].split()[0]
    return rps, p50, p99


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                    help="gunicorn sync workers (default: one per core, as the README advises with SQLite)")
    ap.add_argument("--url", default="")
    ap.add_argument("--text", default="积分", help="the command every callback carries (积分 = full balance statement)")
    args = ap.parse_args()
    global TEXT
    TEXT = args.text
    tmp = Path(tempfile.mkdtemp(prefix="pb-bench-"))
    port = free_port()
    db_url = args.url or f"sqlite:///{tmp / 'bench.db'}"
    conf = tmp / "config.toml"
    write_config(conf, db_url, port)
    env = {**os.environ, "POINTSBOT_CONFIG": str(conf), "PYTHONPATH": str(ROOT)}
    py = sys.executable
    subprocess.run([py, "-m", "flask", "--app", "app", "db", "upgrade"], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    roster = tmp / "roster.csv"
    roster.write_text("employee_no,name,department,manager_no,role,dingtalk_userid,wecom_userid\n" +
                      "".join(f"E{i},员工{i},研发部,,employee,user{i},user{i}\n" for i in range(50)), encoding="utf-8")
    subprocess.run([py, "-m", "flask", "--app", "app", "import-employees", str(roster)], env=env, cwd=ROOT,
                   capture_output=True)
    with gunicorn(env, port, args.workers):
        print(f"command: {TEXT!r}; engine: {db_url.split(':')[0]}, gunicorn {args.workers} sync workers, client 8 threads, 127.0.0.1")
        print(f"{'endpoint':<22}{'max req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'@100/s p50':>12}{'@100/s p99':>12}{'errors':>8}")
        results = {}
        next_id = 1
        for kind in ("bare", "wecom", "dingtalk"):
            n = int(900 * args.seconds / 8) if kind != "bare" else 3000
            reqs = make_requests(kind, n, next_id)
            next_id += n
            elapsed, lat, err = run_load(port, reqs, 8, None)
            paced = make_requests(kind, int(100 * args.seconds), next_id)
            next_id += len(paced)
            _, plat, perr = run_load(port, paced, 8, 100.0)
            rps = len(reqs) / elapsed
            results[kind] = rps
            print(f"{kind:<22}{rps:>10.0f}{statistics.median(lat):>9.1f}{pct(lat, .99):>9.1f}"
                  f"{statistics.median(plat):>12.1f}{pct(plat, .99):>12.1f}{err + perr:>8}")
        print("wrk, 2 threads x 8 connections, unique pre-signed requests:")
        bare = subprocess.run(["wrk", "-t2", "-c8", f"-d{int(args.seconds)}s", "--latency",
                               f"http://127.0.0.1:{port}/bare"], capture_output=True, text=True).stdout
        results["bare"] = float(bare.split("Requests/sec:")[1].split()[0])
        print(f"  bare: {results['bare']:.0f} req/s")
        for kind in ("minimal", "wecom", "dingtalk"):
            got = wrk_run(port, kind, args.seconds, next_id + 10**6 * (2 if kind == "minimal" else 1), tmp)
            if got:
                results[kind] = got[0]
                print(f"  {kind}: {got[0]:.0f} callbacks/s, p50 {got[1]}, p99 {got[2]}")
        for kind in ("wecom", "dingtalk"):
            print(f"ratio {kind}/bare: {results[kind] / results['bare']:.2f}")
        if "minimal" in results:  # the least a verified, decrypted, durably recorded callback costs (bench/wsgi.py)
            print(f"ratio wecom/minimal (verify, decrypt, one durable insert): {results['wecom'] / results['minimal']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
