"""JSON-RPC 2.0 worker for the tests, over Content-Length framing (standard library only).

Reads messages from stdin and writes them to stdout, flushing each. Requests:
- `echo`: answers with the params as the result.
- `notify-later`: answers "ok", then ~20 ms later, idle, sends a `$/progress` notification.
- `ask-host`: sends the host a request (`workspace/configuration`, id "s1"), waits for its
  reply, then answers the original request with `{"host": result}` or, if the host answered
  with an error, `{"host_error": code}`.
- `wrong-id`: answers with the request's id plus 1000.
- `fail`: answers with the error `{"code": -32000, "message": "nope"}`.
Notifications from the host and any other message are ignored.
"""
import json
import sys
import time

stdin, stdout = sys.stdin.buffer, sys.stdout.buffer


def read_message():
    """The next message's JSON, or None at end of input."""
    length = None
    while True:
        line = stdin.readline()
        if not line:
            return None
        line = line.rstrip(b"\r\n")
        if not line:
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return json.loads(stdin.read(length))


def write_message(message):
    message["jsonrpc"] = "2.0"
    body = json.dumps(message).encode()
    stdout.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    stdout.flush()


while True:
    message = read_message()
    if message is None:
        break
    if "id" not in message or "method" not in message:
        continue  # a notification (or a stray response): nothing to answer
    id_, method, params = message["id"], message["method"], message.get("params")
    if method == "echo":
        write_message({"id": id_, "result": params})
    elif method == "notify-later":
        write_message({"id": id_, "result": "ok"})
        time.sleep(0.02)
        write_message({"method": "$/progress", "params": {"done": True}})
    elif method == "ask-host":
        write_message(
            {"id": "s1", "method": "workspace/configuration", "params": {"items": []}}
        )
        while True:
            reply = read_message()
            if reply is None:
                sys.exit(1)
            if reply.get("id") == "s1" and "method" not in reply:
                break
        if "error" in reply:
            write_message({"id": id_, "result": {"host_error": reply["error"]["code"]}})
        else:
            write_message({"id": id_, "result": {"host": reply.get("result")}})
    elif method == "wrong-id":
        write_message({"id": id_ + 1000, "result": "for someone else"})
    elif method == "fail":
        write_message({"id": id_, "error": {"code": -32000, "message": "nope"}})
    else:
        write_message(
            {"id": id_, "error": {"code": -32601, "message": "unknown method " + method}}
        )
