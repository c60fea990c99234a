"""A tiny REPL: a banner line and the prompt ">>> " (no newline) in a single write, then,
for each input line, its result lines and the prompt again.

"add 1 2 3" answers "6"; "count N" answers the lines "1" to "N"; anything else is echoed.
"""

import sys


def main():
    out = sys.stdout
    out.write("Tiny REPL 1.0 (add, count, or anything to echo)\n>>> ")
    out.flush()
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        line = line.rstrip("\n")
        words = line.split()
        if words[:1] == ["add"]:
            result = [str(sum(int(word) for word in words[1:]))]
        elif words[:1] == ["count"]:
            result = [str(i) for i in range(1, int(words[1]) + 1)]
        else:
            result = [line]
        out.write("\n".join(result) + "\n>>> ")
        out.flush()


main()
