"""A JSON-RPC worker that talks while the host is still writing to it.

As soon as the first byte of the host's request arrives, and before reading the rest, it
sends the host a request (`workspace/configuration`, id "w1") and then about 300 KB of
`window/logMessage` notifications, without reading its stdin meanwhile. Only then does it
read the host's request and answer it with `{"size": <bytes of its body>}`. Messages after
that (the host's reply to "w1", say) are read and ignored until end of input.

A host that stops reading the worker's stdout until it can write its reply to "w1" (while
its own long request holds the worker's stdin) deadlocks with it.
"""
import json
import os
import sys


def frame(message):
    message["jsonrpc"] = "2.0"
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


stdin = sys.stdin.buffer


def read_message(first=b""):
    """The next message's body, or None at end of input; `first`: bytes of it already read."""
    length = None
    line = first + stdin.readline()
    while True:
        if not line:
            return None
        line = line.rstrip(b"\r\n")
        if not line:
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        line = stdin.readline()
    return stdin.read(length)


# Wait until the host starts writing a request (one byte, past Python's buffer).
first = os.read(0, 1)
if first:
    os.write(
        1,
        frame({"id": "w1", "method": "workspace/configuration", "params": {"items": []}}),
    )
    note = frame({"method": "window/logMessage", "params": {"type": 4, "message": "x" * 1000}})
    for _ in range(300):
        os.write(1, note)
    body = read_message(first)
    request = json.loads(body)
    os.write(1, frame({"id": request["id"], "result": {"size": len(body)}}))
    while read_message() is not None:
        pass
