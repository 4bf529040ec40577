"""What ``make run`` starts: the web app and, beside it, the scheduler (jobs + outbox loop).

The scheduler runs as its own process, exactly as in production, so the local demo exercises the
same delivery path; both stop together on Ctrl-C.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from settings import ConfigError, load_settings


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"pointsbot: configuration error: {exc}", file=sys.stderr)
        return 2
    host, port = settings.server["host"], settings.server["port"]
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    scheduler = subprocess.Popen([*flask, "scheduler"], env=os.environ.copy())
    base = f"http://{host}:{port}"
    print(f"\n  pointsbot is running: {base}/healthz")
    if settings.playground["enabled"]:
        print(f"  playground: {base}/playground\n", flush=True)
    try:
        return subprocess.call([*flask, "run", "--host", host, "--port", str(port), "--with-threads"])
    except KeyboardInterrupt:
        return 0
    finally:
        scheduler.send_signal(signal.SIGINT)
        try:
            scheduler.wait(timeout=10)
        except subprocess.TimeoutExpired:
            scheduler.kill()


if __name__ == "__main__":
    sys.exit(main())
