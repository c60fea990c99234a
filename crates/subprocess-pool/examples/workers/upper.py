"""A tiny line worker for the warm_vs_cold example: one job per stdin line, answer on stdout.

As a warm worker: `python3 -u upper.py` reads jobs until stdin closes.
As a one-shot command: `python3 upper.py JOB` answers one job and exits.
"""
import sys


def job(text):
    return text.upper()[::-1]


if len(sys.argv) > 1:
    print(job(sys.argv[1]))
else:
    for line in sys.stdin:
        sys.stdout.write(job(line.rstrip("\n")) + "\n")
        sys.stdout.flush()
