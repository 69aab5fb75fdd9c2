#!/usr/bin/env python3
"""A raw HTTP/2 client (prior knowledge, cleartext) that writes its frames by hand, for what a
well-behaved library will not send: floods and malformed requests. HPACK fields go as literals
without indexing; of the answers only :status from the static table is read.

usage: raw_client.py PORT MODE
  empty | priority | window | ping | settings | reset | block | continuations
      a flood; prints "goaway CODE" (the GOAWAY's error code) or "no goaway"
  smuggle CASE
      one request on a new connection; prints "status N", "rst CODE" or "goaway CODE"
"""
import socket
import struct
import sys

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = range(10)
END_STREAM, END_HEADERS = 0x1, 0x4
STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def literal(name, value):
    """A literal field without indexing, new name, no Huffman."""
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def block(fields):
    return b"".join(literal(n.encode(), v.encode()) for n, v in fields)


def request(method, path, extra=()):
    return block([(":method", method), (":scheme", "http"), (":authority", "a"),
                  (":path", path)] + list(extra))


def connect(port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0))
    return s


def send(s, data):
    """Sends; False once the peer stopped taking bytes (closed, reset or not reading)."""
    try:
        s.sendall(data)
        return True
    except OSError:
        return False


def frames(s):
    """The frames the server sends, until it closes (or goes quiet for 10 s)."""
    buf = b""
    while True:
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            yield buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff, buf[9:9 + n]
            buf = buf[9 + n:]
        try:
            got = s.recv(65536)
        except OSError:
            return
        if not got:
            return
        buf += got


def goaway(s):
    for ftype, _, _, payload in frames(s):
        if ftype == GOAWAY:
            return "goaway %d" % int.from_bytes(payload[4:8], "big")
    return "no goaway"


def flood(port, mode):
    if mode in ("ping", "settings"):
        # Acks are owed and never read: a small receive buffer fills soon, then the server's
        # queue of acks grows.
        s = connect(port, rcvbuf=4096)
        s.settimeout(3)
        one = frame(PING, 0, 0, b"12345678") if mode == "ping" else frame(SETTINGS, 0, 0)
        for _ in range(500):
            if not send(s, one * 1000):
                break
        s.settimeout(10)
        return goaway(s)
    s = connect(port)
    if mode == "empty":
        out = frame(HEADERS, END_HEADERS, 1, request("POST", "/flood-empty"))
        out += frame(DATA, 0, 1) * 3
    elif mode == "priority":
        out = frame(PRIORITY, 0, 3, b"\x00\x00\x00\x00\x10") * 200
    elif mode == "window":
        out = frame(WINDOW, 0, 0, struct.pack(">I", 1)) * 20
    elif mode == "reset":
        out = b""
        for i in range(600):
            sid = 1 + 2 * i
            out += frame(HEADERS, END_HEADERS | END_STREAM, sid, request("GET", "/flood-reset"))
            out += frame(RST_STREAM, 0, sid, struct.pack(">I", 8))  # CANCEL
    elif mode == "block":
        # A field of about 16 KiB a frame: the block passes max_request_headers_kb.
        big = literal(b"x", b"v" * 16000)
        out = frame(HEADERS, 0, 1, request("GET", "/flood-block") + big)
        out += b"".join(frame(CONT, 0, 1, big) for _ in range(7))
    elif mode == "continuations":
        head = request("GET", "/flood-cont") + b"\x00\x01x" + hpack_int(1000, 7)
        out = frame(HEADERS, 0, 1, head) + frame(CONT, 0, 1, b"v") * 20
    else:
        sys.exit("unknown mode " + mode)
    send(s, out)
    return goaway(s)


SMUGGLE = {
    # name: (extra fields, :path, body, declared content-length)
    "cl-short": ([("content-length", "10")], "/smuggle-cl-short", b"abc"),
    "cl-long": ([("content-length", "2")], "/smuggle-cl-long", b"abcdef"),
    "transfer-encoding": ([("transfer-encoding", "chunked")], "/smuggle-te",
                          b"3\r\nabc\r\n0\r\n\r\n"),
    "uppercase": ([("X-Smuggle", "1")], "/smuggle-upper", None),
    "space": ([("x smuggle", "1")], "/smuggle-space", None),
    "no-slash": ([], "smuggle-noslash", None),
    "absolute": ([], "http://a/smuggle-absolute", None),
    "connection": ([("connection", "close")], "/smuggle-connection", None),
    "keep-alive": ([("keep-alive", "timeout=5")], "/smuggle-keepalive", None),
    "upgrade": ([("upgrade", "websocket")], "/smuggle-upgrade", None),
    "te-gzip": ([("te", "gzip")], "/smuggle-te-gzip", None),
    "te-trailers": ([("te", "trailers")], "/ok-te-trailers", None),
}


def smuggle(port, case):
    extra, path, body = SMUGGLE[case]
    s = connect(port)
    method = "POST" if body is not None else "GET"
    out = frame(HEADERS, END_HEADERS | (END_STREAM if body is None else 0), 1,
                request(method, path, extra))
    if body is not None:
        out += frame(DATA, END_STREAM, 1, body)
    send(s, out)
    for ftype, _, sid, payload in frames(s):
        if ftype == RST_STREAM and sid == 1:
            return "rst %d" % int.from_bytes(payload[:4], "big")
        if ftype == GOAWAY:
            return "goaway %d" % int.from_bytes(payload[4:8], "big")
        if ftype == HEADERS and sid == 1:
            return "status %s" % STATUS.get(payload[0] & 0x7f if payload[0] & 0x80 else -1,
                                            "other")
    return "nothing"


if __name__ == "__main__":
    port, mode = int(sys.argv[1]), sys.argv[2]
    print(smuggle(port, sys.argv[3]) if mode == "smuggle" else flood(port, mode))
