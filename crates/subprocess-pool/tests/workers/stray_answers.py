"""A worker speaking lines that sometimes answers one request twice.

Usage: stray_answers.py MODULUS TWICE LATE

Each request is a number N, answered with the line "N". When N % MODULUS == TWICE the
answer is written twice in a single write (both lines reach the host together); when
N % MODULUS == LATE the answer is written, then, 5 ms later, written again in a write of
its own. The second copy looks exactly like an answer: only when it arrived tells it apart.
"""

import os
import sys
import time


def main():
    modulus, twice, late = (int(arg) for arg in sys.argv[1:4])
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return
        n = int(line)
        answer = b"%d\n" % n
        if n % modulus == twice:
            os.write(1, answer + answer)
        elif n % modulus == late:
            os.write(1, answer)
            time.sleep(0.005)
            os.write(1, answer)
        else:
            os.write(1, answer)


main()
