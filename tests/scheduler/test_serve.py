"""``flask scheduler`` stops cleanly on SIGTERM and SIGINT: it exits 0 instead of dying with its claims held."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from storage.models import JobRun

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_scheduler_exits_0_on_a_stop_signal(tmp_path: Path, sig: signal.Signals) -> None:
    db = tmp_path / "s.db"
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{db}"\n', encoding="utf-8")
    env = {**os.environ, "POINTSBOT_CONFIG": str(config)}
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    proc = subprocess.Popen([*flask, "scheduler"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    engine = create_engine(f"sqlite:///{db}")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # running: the start-up catch-up has claimed its periods
            with engine.connect() as conn:
                if conn.scalar(select(func.count()).select_from(JobRun)):
                    break
            time.sleep(0.2)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        engine.dispose()
    assert proc.returncode == 0, out
    assert f"{sig.name} received, stopping" in out and "scheduler: stopped" in out
