"""A Bazel multiplex worker (JSON protocol) on asyncio: each request runs as a task of
its own and is answered, with its requestId, when it is done, in whatever order.

Requests (the arguments):
  sleep MS [TEXT]  answer "TEXT@PID" after MS milliseconds
  die MS           exit with status 3 after MS milliseconds
  cancels          answer how many cancel requests arrived
  requests         answer how many requests arrived (this one included)
A cancel request for a running request answers it with wasCancelled at once.
"""

import asyncio
import json
import os
import sys


async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer
    running = {}
    cancels = 0
    requests = 0
    pid = os.getpid()

    def answer(message):
        out.write(json.dumps(message).encode() + b"\n")
        out.flush()

    async def run(request_id, arguments):
        command = arguments[0] if arguments else ""
        if command == "sleep":
            await asyncio.sleep(int(arguments[1]) / 1000)
            text = arguments[2] if len(arguments) > 2 else ""
            answer({"requestId": request_id, "output": f"{text}@{pid}"})
        elif command == "die":
            await asyncio.sleep(int(arguments[1]) / 1000)
            os._exit(3)
        elif command == "cancels":
            answer({"requestId": request_id, "output": str(cancels)})
        elif command == "requests":
            answer({"requestId": request_id, "output": str(requests)})
        else:
            answer({"requestId": request_id, "exitCode": 2, "output": f"unknown: {arguments}"})
        running.pop(request_id, None)

    while line := await reader.readline():
        request = json.loads(line)
        request_id = request.get("requestId", 0)
        if request.get("cancel"):
            cancels += 1
            task = running.pop(request_id, None)
            if task is not None:
                task.cancel()
                answer({"requestId": request_id, "wasCancelled": True})
            continue
        requests += 1
        running[request_id] = asyncio.create_task(run(request_id, request.get("arguments", [])))


asyncio.run(main())
