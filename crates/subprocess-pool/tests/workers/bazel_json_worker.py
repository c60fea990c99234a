"""A Bazel persistent worker speaking the JSON protocol (standard library only).

Started with --persistent_worker it answers each WorkRequest line with a WorkResponse line:
the arguments joined as output, exitCode 0; the argument "fail" answers exitCode 1.
"""
import json
import sys

if "--persistent_worker" not in sys.argv:
    sys.exit("this worker only runs as a persistent worker")

for line in sys.stdin:
    request = json.loads(line)
    arguments = request.get("arguments", [])
    failed = "fail" in arguments
    response = {
        "exitCode": 1 if failed else 0,
        "output": "failed on purpose" if failed else " ".join(arguments),
        "requestId": request.get("requestId", 0),
        "someFutureField": True,
    }
    sys.stdout.write(json.dumps(response) + "\n")
    sys.stdout.flush()
