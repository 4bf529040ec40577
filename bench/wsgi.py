"""The app as gunicorn serves it, plus a bare endpoint to compare against (benchmarks only)."""
from __future__ import annotations

from app import create_app

app = create_app()


@app.get("/bare")
def bare() -> str:
    return "ok"
