"""Length-prefixed worker for the tests: each frame is a u32 big-endian length, then bytes.

Echoes every frame back, except `huge`, answered with a header claiming 4 GiB (and no body).
"""
import struct
import sys

stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
while True:
    header = stdin.read(4)
    if len(header) < 4:
        break
    (length,) = struct.unpack(">I", header)
    body = stdin.read(length)
    if body == b"huge":
        stdout.write(struct.pack(">I", 0xFFFFFFFF))
    else:
        stdout.write(struct.pack(">I", len(body)) + body)
    stdout.flush()
