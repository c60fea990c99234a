"""A Bazel JSON persistent worker that answers some requests twice in one write.

Each WorkRequest line (one argument, a JSON string, no requestId: singleplex) is answered
with a WorkResponse whose output is that argument. A request whose argument is "twice" is
answered twice, both copies in a single os.write, so the host reads them together.

The test spawns it hundreds of times: it imports nothing but os and sys and is run with -S
(no site import), and it takes the argument's JSON text as it is instead of parsing JSON.
"""
import os
import sys

stdin = sys.stdin.buffer
while True:
    line = stdin.readline()
    if not line:
        break
    # {"arguments":["..."]}: the argument, still a JSON string literal.
    argument = line[line.index(b"[") + 1 : line.rindex(b"]")]
    frame = b'{"exitCode":0,"output":' + argument + b',"requestId":0}\n'
    os.write(1, frame + frame if argument == b'"twice"' else frame)
