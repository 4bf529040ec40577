"""Log context, log formats and request ids (telemetry.py)."""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from typing import Iterator

import telemetry


def test_a_request_id_is_kept_only_when_safe_to_log() -> None:
    assert telemetry.request_id("lb-1234-ABCD") == "lb-1234-ABCD"
    for unsafe in ("x" * 65, "a b", "id\nforged line", "<script>", "", None):
        new = telemetry.request_id(unsafe)
        assert new != unsafe and len(new) == 32 and new.isalnum()


def _record(msg: str, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys
            info = sys.exc_info()
    record = logging.LogRecord("pointsbot.events", logging.INFO, __file__, 1, msg, (), info)
    telemetry.ContextFilter().filter(record)
    return record


def _context() -> dict[str, str]:
    """What a log line written now would carry."""
    record = _record("x")
    return {name: getattr(record, name) for name in telemetry.FIELDS if getattr(record, name) != "-"}


def test_scopes_layer_and_unwind_and_a_note_lands_in_the_innermost() -> None:
    telemetry.note(employee="ignored")  # outside any scope: nothing lasting
    assert _context() == {}
    with telemetry.scope(request_id="r1", platform="wecom"):
        with telemetry.scope(event_id="e1"):
            telemetry.note(employee="1002")
            assert _context() == {"request_id": "r1", "platform": "wecom", "event_id": "e1",
                                  "employee": "1002"}
        assert _context() == {"request_id": "r1", "platform": "wecom"}
    assert _context() == {}


def test_json_lines_parse_and_carry_the_context() -> None:
    with telemetry.scope(run_id="run9", job="expire-points"):
        line = telemetry.JsonFormatter().format(_record("expired 3 lots", exc=True))
    data = json.loads(line)
    assert (data["msg"], data["level"], data["run_id"], data["job"]) == ("expired 3 lots", "INFO", "run9",
                                                                          "expire-points")
    assert "ValueError: boom" in data["exc"] and "platform" not in data and "\n" not in line


def test_text_lines_end_with_the_known_ids() -> None:
    with telemetry.scope(request_id="r1", platform="dingtalk", event_id="m-1"):
        line = telemetry.TextFormatter().format(_record("handled"))
    assert line.endswith("handled [request_id=r1 platform=dingtalk event_id=m-1]")
    assert telemetry.TextFormatter().format(_record("plain")).endswith("pointsbot.events plain")


@contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """The root logger without its handlers (pytest adds its own for each test phase, so this runs inside
    the test body), restored afterwards."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers = []
    try:
        yield root
    finally:
        root.handlers, root.level = saved, level


def test_configure_logging_leaves_someone_elses_handlers_alone() -> None:
    with bare_root() as root:
        foreign = logging.NullHandler()
        root.addHandler(foreign)
        assert telemetry.configure_logging("INFO", "json") is False and root.handlers == [foreign]
        assert telemetry.configure_logging("WARNING", "json", force=True) is True
        assert telemetry.configure_logging("INFO", "text", force=True) is True  # replaces its own, keeps one
        ours = [h for h in root.handlers if h is not foreign]
        assert len(ours) == 1 and isinstance(ours[0].formatter, telemetry.TextFormatter)
        root.handlers = []
        assert telemetry.configure_logging("INFO", "json") is True and root.level == logging.INFO
        assert isinstance(root.handlers[0].formatter, telemetry.JsonFormatter)
