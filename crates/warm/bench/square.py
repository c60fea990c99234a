"""The job of warm's benchmark: the square of a number. As a warm worker (no argument) it
reads a number per line and prints its square; with an argument, as a spawn per job does,
it prints the square of that one number and exits."""
import sys

def square(n):
    return n * n

if len(sys.argv) > 1:
    print(square(int(sys.argv[1])))
else:
    for line in sys.stdin:
        print(square(int(line)), flush=True)
