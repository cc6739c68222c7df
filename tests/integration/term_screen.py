#!/usr/bin/env python3
"""What a terminal shows after the bytes on stdin: a test's view of progress output.

Enough of a VT100 for cimg's progress lines: printable text, CR, LF, backspace, and the CSI
sequences `ESC[nA` (up), `ESC[nB` (down), `ESC[nC` (right), `ESC[nD` (left), `ESC[K` / `ESC[2K`
(erase in line). Any other escape sequence fails loudly, so that a test never passes on output
this screen cannot show. Prints the screen's lines, right-stripped, without the empty ones at
the bottom. The screen is as wide as --cols (long lines wrap, as on a terminal).
"""
import argparse
import re
import sys


def render(data, cols):
    lines = [[]]
    row = col = 0

    def put(ch):
        nonlocal row, col
        if col >= cols:  # wrap
            row, col = row + 1, 0
            while len(lines) <= row:
                lines.append([])
        line = lines[row]
        while len(line) < col:
            line.append(" ")
        if col < len(line):
            line[col] = ch
        else:
            line.append(ch)
        col += 1

    i = 0
    csi = re.compile(r"\x1b\[(\d*)([ABCDK])")
    while i < len(data):
        ch = data[i]
        if ch == "\x1b":
            m = csi.match(data, i)
            if not m:
                raise SystemExit("term_screen: unsupported escape sequence %r" % data[i:i + 8])
            n = int(m.group(1) or (0 if m.group(2) == "K" else 1))
            op = m.group(2)
            if op == "A":
                row = max(0, row - n)
            elif op == "B":
                row += n
                while len(lines) <= row:
                    lines.append([])
            elif op == "C":
                col += n
            elif op == "D":
                col = max(0, col - n)
            elif op == "K":
                line = lines[row]
                if n == 0:
                    del line[col:]
                elif n == 1:
                    line[:min(col + 1, len(line))] = [" "] * min(col + 1, len(line))
                else:
                    line.clear()
            i = m.end()
            continue
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            col = 0  # script(1) turns LF into CRLF; a bare LF is treated alike
            while len(lines) <= row:
                lines.append([])
        elif ch == "\b":
            col = max(0, col - 1)
        elif ch >= " ":
            put(ch)
        i += 1
    out = ["".join(line).rstrip() for line in lines]
    while out and out[-1] == "":
        out.pop()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cols", type=int, default=200)
    a = ap.parse_args()
    data = sys.stdin.buffer.read().decode("utf-8", "replace")
    for line in render(data, a.cols):
        print(line)


if __name__ == "__main__":
    main()
