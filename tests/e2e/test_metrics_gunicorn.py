"""Under gunicorn every worker counts into one /metrics (prometheus_client's multiprocess mode)."""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
CALLS = 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=b"<xml/>" if method == "POST" else None)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def _rejected(body: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(body) for s in family.samples
               if s.name == "pointsbot_callbacks_total" and s.labels.get("outcome") == "rejected")


def test_all_workers_are_counted(tmp_path: Path) -> None:
    conf, port, prom = tmp_path / "config.toml", _free_port(), tmp_path / "prom"
    prom.mkdir()
    conf.write_text(f"""
[server]
log_level = "WARNING"
[database]
url = "sqlite:///{tmp_path / 'pb.db'}"
[spool]
dir = "{tmp_path / 'spool'}"
[wecom]
enabled = true
corp_id = "wwmetrics"
agent_id = 1000002
secret = "s"
token = "metricsToken"
encoding_aes_key = "pointsbotMetricsWeComEncodingAesKey0123456A"
api_base = "http://127.0.0.1:9/unused"
""", encoding="utf-8")
    env = {**os.environ, "POINTSBOT_CONFIG": str(conf), "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(prom)}
    bin_dir = Path(sys.executable).parent
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    server = subprocess.Popen([str(bin_dir / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "--log-level",
                               "warning", "app:create_app()"], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
        query = f"/callback/wecom?msg_signature=bad&timestamp={int(time.time())}&nonce=n"
        # One request sends half its body and holds a sync worker, so the others go to the second worker.
        slow = socket.create_connection(("127.0.0.1", port), timeout=5)
        slow.sendall(f"POST {query} HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n<xm".encode())
        time.sleep(0.3)
        assert {_get(port, query, "POST")[0] for _ in range(CALLS - 1)} == {403}
        slow.sendall(b"l/>")
        assert slow.recv(64).startswith(b"HTTP/1.1 403")
        slow.close()
        assert len(list(prom.glob("counter_*.db"))) == 2  # each worker counted into a file of its own
        counts = {_rejected(_get(port, "/metrics")[1]) for _ in range(6)}
        assert counts == {CALLS}  # whichever worker answers the scrape reports both workers' callbacks
    finally:
        server.terminate()
        server.wait(timeout=10)
