#!/usr/bin/env python3
"""HTTP/2 conformance probe (RFC 9113) with an independent client: PyPI `h2`.

Connects to HOST PORT over cleartext TCP (prior knowledge, h2c), sends
malformed frames and sequences, and asserts the server's reaction: a stream
error (RST_STREAM) or connection error (GOAWAY) with the right code.

    pip install h2
    python3 h2_conformance.py 127.0.0.1 8080            # any RFC 9113 server
    python3 h2_conformance.py 127.0.0.1 8080 --postern  # Postern's own limits too

Exit status 0 when every case passes; one line per case either way.
A stream error may be escalated to a connection error with the same code
(RFC 9113 §5.4.1), so both are accepted where the RFC names a stream error.
"""

import argparse
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, COMPRESSION_ERROR = 0x5, 0x6, 0x7, 0x9
ENHANCE_YOUR_CALM = 0xB
NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
         4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM",
         8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM"}


class Reaction:
    """What the server did: frames seen until the verdict or the timeout."""

    def __init__(self):
        self.resets = {}        # stream id -> error code
        self.goaway = None      # error code
        self.statuses = {}      # stream id -> :status
        self.closed = False     # the server closed the TCP connection

    def describe(self):
        parts = [f"RST_STREAM({s}, {NAMES.get(c, c)})" for s, c in self.resets.items()]
        if self.goaway is not None:
            parts.append(f"GOAWAY({NAMES.get(self.goaway, self.goaway)})")
        parts += [f"HEADERS({s}, :status {st})" for s, st in self.statuses.items()]
        if self.closed:
            parts.append("connection closed")
        return ", ".join(parts) or "nothing"


class Probe:
    """One raw TCP connection that has sent the preface and SETTINGS."""

    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 65536
        self.decoder.max_header_list_size = 1 << 20
        self.buffer = b""
        self.reaction = Reaction()
        self.send(PREFACE + SettingsFrame(0).serialize())

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            self.reaction.closed = True

    def headers(self, stream, fields, end_stream=True, encode=True, max_frame=16384):
        """HEADERS (+ CONTINUATION) with `fields` as (name, value) bytes, unvalidated."""
        block = self.encoder.encode(fields) if encode else fields
        chunks = [block[i:i + max_frame] for i in range(0, len(block), max_frame)] or [b""]
        out = b""
        for index, chunk in enumerate(chunks):
            flags = set()
            if index == len(chunks) - 1:
                flags.add("END_HEADERS")
            if index == 0:
                if end_stream:
                    flags.add("END_STREAM")
                frame = HeadersFrame(stream, chunk, flags=flags)
            else:
                frame = ContinuationFrame(stream, chunk, flags=flags)
            out += frame.serialize()
        return out

    def read_until(self, done):
        """Reads frames until done(reaction) or the timeout; returns the reaction."""
        deadline = time.monotonic() + self.timeout
        while not done(self.reaction) and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                self.reaction.closed = True
                break
            if not data:
                self.reaction.closed = True
                break
            self.buffer += data
            self._parse()
        return self.reaction

    def _parse(self):
        while len(self.buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
            if len(self.buffer) < 9 + length:
                return
            frame.parse_body(memoryview(self.buffer[9:9 + length]))
            self.buffer = self.buffer[9 + length:]
            if isinstance(frame, RstStreamFrame):
                self.reaction.resets[frame.stream_id] = frame.error_code
            elif isinstance(frame, GoAwayFrame):
                self.reaction.goaway = frame.error_code
            elif isinstance(frame, HeadersFrame):
                for name, value in self.decoder.decode(frame.data, raw=True):
                    if name == b":status":
                        self.reaction.statuses[frame.stream_id] = int(value)
            elif isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                self.send(SettingsFrame(0, flags=["ACK"]).serialize())

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def request(authority, method=b"GET", path=b"/", extra=()):
    return [(b":method", method), (b":scheme", b"http"), (b":path", path), (b":authority", authority)] + list(extra)


def stream_or_connection_error(stream, codes):
    """The check for a stream error the server may escalate (RFC 9113 §5.4.1)."""
    def check(reaction):
        return reaction.resets.get(stream) in codes or reaction.goaway in codes
    return check


def connection_error(codes):
    def check(reaction):
        return reaction.goaway in codes
    return check


class Suite:
    def __init__(self, args):
        self.args = args
        self.authority = args.authority.encode()
        self.failures = 0

    def run_case(self, name, action, check, rfc, stop=None):
        """Runs one case on a fresh connection. Frames are read until `stop`
        (default: `check`) holds or the timeout passes; then `check` decides."""
        probe = Probe(self.args.host, self.args.port, self.args.timeout)
        try:
            action(probe)
            reaction = probe.read_until(stop or check)
        finally:
            probe.close()
        ok = check(reaction)
        if not ok:
            self.failures += 1
        print(f"{'PASS' if ok else 'FAIL'}  {name:<58} {rfc:<14} got: {reaction.describe()}")
        return ok

    def malformed_request(self, name, fields, rfc, encode=True):
        self.run_case(
            name,
            lambda p: p.send(p.headers(1, fields, encode=encode)),
            stream_or_connection_error(1, {PROTOCOL_ERROR}), rfc)

    def run(self):
        a = self.authority
        # The server is alive and our encoding is right.
        self.run_case(
            "valid GET is answered (h2 library request)", self.valid_request_with_h2,
            lambda r: 1 in r.statuses, "§8.3")

        # Pseudo-header fields (RFC 9113 §8.3).
        self.malformed_request("missing :path", [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", a)], "§8.3.1")
        self.malformed_request("missing :method", [(b":scheme", b"http"), (b":path", b"/"), (b":authority", a)], "§8.3.1")
        self.malformed_request("missing :scheme", [(b":method", b"GET"), (b":path", b"/"), (b":authority", a)], "§8.3.1")
        self.malformed_request("empty :path", request(a, path=b""), "§8.3.1")
        self.malformed_request("duplicate :method", request(a) + [(b":method", b"POST")], "§8.3")
        self.malformed_request("unknown pseudo-header :foo", request(a) + [(b":foo", b"bar")], "§8.3")
        self.malformed_request("response pseudo-header :status in a request", request(a) + [(b":status", b"200")], "§8.3")
        self.malformed_request(
            "pseudo-header after a regular field",
            [(b":method", b"GET"), (b"accept", b"*/*"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", a)], "§8.3")

        # Field syntax and connection-specific fields (RFC 9113 §8.2).
        self.malformed_request("uppercase field name", request(a, extra=[(b"X-Upper", b"1")]), "§8.2.1")
        self.malformed_request("CR LF in a field value", request(a, extra=[(b"x-a", b"1\r\nx-b: 2")]), "§8.2.1")
        for field in (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"):
            value = {b"connection": b"keep-alive", b"keep-alive": b"5", b"proxy-connection": b"close",
                     b"transfer-encoding": b"chunked", b"upgrade": b"websocket"}[field]
            self.malformed_request(f"connection-specific field {field.decode()}", request(a, extra=[(field, value)]), "§8.2.2")
        self.malformed_request("te other than trailers", request(a, extra=[(b"te", b"gzip")]), "§8.2.2")
        self.run_case(
            "te: trailers is accepted", lambda p: p.send(p.headers(1, request(a, extra=[(b"te", b"trailers")]))),
            lambda r: 1 in r.statuses, "§8.2.2")

        # Content-length against DATA (RFC 9113 §8.1.1).
        def longer(p):
            p.send(p.headers(1, request(a, b"POST", extra=[(b"content-length", b"3")]), end_stream=False)
                   + DataFrame(1, b"too long", flags=["END_STREAM"]).serialize())
        self.run_case("DATA longer than content-length", longer, stream_or_connection_error(1, {PROTOCOL_ERROR}), "§8.1.1")

        def shorter(p):
            p.send(p.headers(1, request(a, b"POST", extra=[(b"content-length", b"10")]), end_stream=False)
                   + DataFrame(1, b"short", flags=["END_STREAM"]).serialize())
        self.run_case("DATA shorter than content-length", shorter, stream_or_connection_error(1, {PROTOCOL_ERROR}), "§8.1.1")
        self.malformed_request("two different content-length values",
                               request(a, b"POST", extra=[(b"content-length", b"1"), (b"content-length", b"2")]), "§8.1.1")

        # Flow control (RFC 9113 §6.9.1).
        self.run_case(
            "connection window overflow (WINDOW_UPDATE 2^31-1)",
            lambda p: p.send(WindowUpdateFrame(0, 0x7FFFFFFF).serialize()),
            connection_error({FLOW_CONTROL_ERROR}), "§6.9.1")

        def stream_window(p):
            p.send(p.headers(1, request(a, b"POST"), end_stream=False) + WindowUpdateFrame(1, 0x7FFFFFFF).serialize())
        self.run_case("stream window overflow (WINDOW_UPDATE 2^31-1)", stream_window,
                      stream_or_connection_error(1, {FLOW_CONTROL_ERROR}), "§6.9.1")
        self.run_case(
            "WINDOW_UPDATE with increment 0 on the connection",
            lambda p: p.send(WindowUpdateFrame(0, 0).serialize()), connection_error({PROTOCOL_ERROR}), "§6.9")

        # Stream states (RFC 9113 §5.1).
        def after_end(p):
            p.send(p.headers(1, request(a)) + DataFrame(1, b"late", flags=["END_STREAM"]).serialize())
        self.run_case("DATA after END_STREAM (half-closed remote)", after_end,
                      stream_or_connection_error(1, {STREAM_CLOSED}), "§5.1")
        self.run_case("DATA on an idle stream", lambda p: p.send(DataFrame(5, b"x").serialize()),
                      connection_error({PROTOCOL_ERROR}), "§5.1")
        self.run_case("HEADERS on an even (server) stream id", lambda p: p.send(p.headers(2, request(a))),
                      connection_error({PROTOCOL_ERROR}), "§5.1.1")

        def lower_id(p):
            p.send(p.headers(5, request(a)) + p.headers(3, request(a)))
        # nghttp2 treats a lower id as a stream it already closed and drops the
        # frame; RFC 9113 §5.1.1 wants PROTOCOL_ERROR. Either way stream 3 must
        # never be processed.
        self.run_case("stream id lower than a previous one is never processed", lower_id,
                      lambda r: r.goaway == PROTOCOL_ERROR or (5 in r.statuses and 3 not in r.statuses), "§5.1.1",
                      stop=lambda r: r.goaway is not None)
        self.run_case("RST_STREAM on an idle stream", lambda p: p.send(RstStreamFrame(7, error_code=8).serialize()),
                      connection_error({PROTOCOL_ERROR}), "§6.4")

        # Frame sizes and HPACK (RFC 9113 §4.2, RFC 7541).
        def oversized_frame(p):
            # The default SETTINGS_MAX_FRAME_SIZE is 16384 until the server's SETTINGS say otherwise.
            p.send(p.headers(1, request(a, b"POST"), end_stream=False) + DataFrame(1, b"a" * 20000).serialize())
        self.run_case("DATA frame over SETTINGS_MAX_FRAME_SIZE", oversized_frame,
                      lambda r: r.goaway == FRAME_SIZE_ERROR or r.resets.get(1) == FRAME_SIZE_ERROR, "§4.2")
        self.run_case("HPACK index 0 (invalid)", lambda p: p.send(p.headers(1, b"\x80", encode=False)),
                      connection_error({COMPRESSION_ERROR}), "RFC 7541 §6.1")

        # Limits (RFC 9113 §10.5).
        big = [(b"x-big-%d" % i, b"a" * 4000) for i in range(24)]  # ~96 KiB in at most 7 frames
        if self.args.postern:
            self.run_case("oversized header list gets 431", lambda p: p.send(p.headers(1, request(a) + big)),
                          lambda r: r.statuses.get(1) == 431, "§10.5.1")
        else:
            self.run_case("oversized header list is refused",
                          lambda p: p.send(p.headers(1, request(a) + big)),
                          lambda r: r.statuses.get(1) == 431 or 1 in r.resets or r.goaway is not None, "§10.5.1")

        def continuation_flood(p):
            data = HeadersFrame(1, p.encoder.encode(request(a)), flags=["END_STREAM"]).serialize()
            for i in range(64):
                data += ContinuationFrame(1, p.encoder.encode([(b"x-c%d" % i, b"1")])).serialize()
            p.send(data)
        self.run_case("CONTINUATION flood", continuation_flood,
                      lambda r: r.goaway is not None or r.closed, "§10.5")

        def rapid_reset(p):
            data = b""
            for i in range(2000):
                stream = 1 + 2 * i
                data += p.headers(stream, request(a), end_stream=False)
                data += RstStreamFrame(stream, error_code=8).serialize()
            p.send(data)
        codes = {ENHANCE_YOUR_CALM} if self.args.postern else {ENHANCE_YOUR_CALM, INTERNAL_ERROR}
        self.run_case("Rapid Reset (CVE-2023-44487)", rapid_reset, connection_error(codes), "§10.5")
        return self.failures

    def valid_request_with_h2(self, probe):
        """A well-formed request encoded by the h2 library itself."""
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        conn = h2.connection.H2Connection(config=config)
        conn.initiate_connection()
        conn.send_headers(1, request(self.authority), end_stream=True)
        # The probe already sent a preface: send only what follows h2's own.
        data = conn.data_to_send()
        assert data.startswith(PREFACE)
        probe.send(data[len(PREFACE):])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--authority", default="localhost", help=":authority to send (default localhost)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each reaction")
    parser.add_argument("--postern", action="store_true",
                        help="also assert Postern's limits: 431 for oversized headers, ENHANCE_YOUR_CALM for Rapid Reset")
    args = parser.parse_args()
    failures = Suite(args).run()
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
