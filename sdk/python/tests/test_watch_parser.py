"""The event stream format as ``client.secrets.watch`` parses it (lines split
anywhere, multi-line data, comments), the Event model, and the reconnection
backoff's jitter: offline, no server."""

from __future__ import annotations

import unittest

from stub import sse  # first: see stub

from secretgate import Event
from secretgate._watch import _backoff_delay, _Message, _Parser, _ProtocolError


class ParserTest(unittest.TestCase):
    """The event stream format, fed whole, one byte at a time and split at
    every position: the result must not depend on how the bytes arrive."""

    CASES: dict[str, tuple[bytes, list[tuple[str, str]], str | None]] = {
        "one event": (b"id: 1\nevent: secret.created\ndata: {}\n\n", [("secret.created", "{}")], "1"),
        "multi-line data joined by LF": (b"data: a\ndata: b\ndata: c\n\n", [("message", "a\nb\nc")], None),
        "comments ignored": (b": keep-alive\n\n:x\nevent: e\n: mid\ndata: d\n\n", [("e", "d")], None),
        "CRLF, CR and LF line ends": (b"event: e\r\ndata: a\rdata: b\n\r\n\r", [("e", "a\nb")], None),
        "only one space stripped": (b"data:x\ndata:  y\n\n", [("message", "x\n y")], None),
        "a field without colon": (b"data\ndata\n\n", [("message", "\n")], None),
        "an event without data is not dispatched": (b"event: e\n\ndata: d\n\n", [("message", "d")], None),
        "retry and unknown fields ignored": (b"retry: 1\nfoo: bar\nevent: x\ndata: d\n\n", [("x", "d")], None),
        "an id with no data still counts": (b"id: 7\n\n", [], "7"),
        "an id holding NUL is ignored": (b"id: 1\n\nid: 2\x003\n\n", [], "1"),
        "an id that cannot be a header is ignored": ("id: 1\n\nid: é\n\n".encode(), [], "1"),
        "an empty id clears it": (b"id: 1\n\nid\n\n", [], ""),
        "a byte order mark is skipped": (b"\xef\xbb\xbfdata: d\n\n", [("message", "d")], None),
        "an unfinished event is not dispatched, nor its id": (
            b"id: 1\ndata: a\n\nid: 2\ndata: b\n",
            [("message", "a")],
            "1",
        ),
        "invalid UTF-8 is replaced": (b"data: \xff\n\n", [("message", "\ufffd")], None),
        "several events": (sse(1, "secret.created") + sse(2, "resync"), [("secret.created", ""), ("resync", "")], "2"),
    }

    def feed(self, pieces: list[bytes]) -> tuple[list[tuple[str, str]], str | None]:
        parser = _Parser(None)
        out: list[_Message] = []
        for piece in pieces:
            out += parser.feed(piece)[0]
        return [(m.kind, m.data) for m in out], parser.last_id

    def test_cases(self) -> None:
        for what, (raw, want, last_id) in self.CASES.items():
            splits = {"whole": [raw], "bytes": [raw[i : i + 1] for i in range(len(raw))]}
            splits.update({f"at {i}": [raw[:i], raw[i:]] for i in range(1, len(raw))})
            for how, pieces in splits.items():
                with self.subTest(what, split=how):
                    got, got_id = self.feed(pieces)
                    if what == "several events":
                        got = [(k, "") for k, _ in got]
                    self.assertEqual(got, want)
                    self.assertEqual(got_id, last_id)

    def test_a_line_proves_the_stream_alive(self) -> None:
        parser = _Parser(None)
        self.assertEqual(parser.feed(b": keep-al"), ([], False), "no line ended yet")
        self.assertEqual(parser.feed(b"ive\n"), ([], True))

    def test_a_line_without_end_is_bounded(self) -> None:
        parser = _Parser(None)
        with self.assertRaisesRegex(_ProtocolError, "line longer"):
            for _ in range(20):
                parser.feed(b"x" * 65536)

    def test_an_event_is_bounded(self) -> None:
        parser = _Parser(None)
        with self.assertRaisesRegex(_ProtocolError, "event larger"):
            for _ in range(20):
                parser.feed(b"data: " + b"x" * 65536 + b"\n")

    def test_reset_keeps_the_last_id_only(self) -> None:
        parser = _Parser("4")
        parser.feed(b"id: 5\ndata: half")
        parser.reset()
        self.assertEqual(parser.feed(b"\n\n"), ([], True), "the half event is gone")
        self.assertEqual(parser.last_id, "4")


class EventModelTest(unittest.TestCase):
    def test_from_json(self) -> None:
        ev = Event.from_json("secret.updated", {"project": "p", "name": "db", "version": 3, "index": 9, "new": 1})
        self.assertEqual(ev, Event("secret.updated", "p", "db", 3, 9))
        resync = Event.from_json(Event.RESYNC, {"project": "p", "index": 4})
        self.assertEqual((resync.name, resync.version, resync.index), ("", 0, 4))

    def test_wrong_types(self) -> None:
        for bad in ([], {"index": "1"}, {"version": True}, {"project": 1}, {"name": None}, "x"):
            with self.subTest(bad=bad):
                with self.assertRaises(TypeError):
                    Event.from_json("secret.created", bad)


class BackoffTest(unittest.TestCase):
    def test_equal_jitter(self) -> None:
        for d in (0.5, 4.0, 30.0):
            waits = [_backoff_delay(d) for _ in range(200)]
            self.assertTrue(all(d / 2 <= w <= d for w in waits), d)
            self.assertGreater(len(set(waits)), 150, "jittered, not constant")


if __name__ == "__main__":
    unittest.main()
