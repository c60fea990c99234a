"""A worker for warm's tests: reads a job per line, answers `job * 2` for numbers and the
line itself otherwise.

  --jitter         sleep 0-3 ms before each answer, so that answers finish out of order
  --crash-every N  exit with status 3 instead of answering every Nth request it gets
  a line `slow`    sleep 30 s before answering
  a line `nap`     sleep 0.2 s before answering
"""
import os
import random
import sys
import time

jitter = "--jitter" in sys.argv
crash_every = int(sys.argv[sys.argv.index("--crash-every") + 1]) if "--crash-every" in sys.argv else 0
served = 0
for line in sys.stdin:
    line = line.rstrip("\n")
    served += 1
    if crash_every and served % crash_every == 0:
        os._exit(3)
    if line == "slow":
        time.sleep(30)
    if line == "nap":
        time.sleep(0.2)
    if jitter:
        time.sleep(random.random() * 0.003)
    answer = str(int(line) * 2) if line.lstrip("-").isdigit() else line
    print(answer, flush=True)
