#!/usr/bin/env python3
"""Writes each complete C++ program the docs show (a ```cpp block with an
`int main(`) to OUT_DIR/<doc>-<line>.cc and prints the paths, one a line.

usage: doc_programs.py OUT_DIR FILE.md [FILE.md ...]
"""
import os
import re
import sys


def main():
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(sys.argv) == 2 else 2
    out_dir = sys.argv[1]
    for path in sys.argv[2:]:
        lines = open(path).read().split("\n")
        i = 0
        while i < len(lines):
            if lines[i].strip() == "```cpp":
                start = i + 1
                j = start
                while j < len(lines) and lines[j].strip() != "```":
                    j += 1
                if j == len(lines):
                    sys.exit(f"doc_programs: {path}:{start}: a ```cpp block is never closed")
                body = "\n".join(lines[start:j]) + "\n"
                if re.search(r"\bint main\(", body):
                    name = os.path.basename(path).replace(".md", "") + f"-{start}.cc"
                    with open(os.path.join(out_dir, name), "w") as f:
                        f.write(f"// {path}:{start}\n" + body)
                    print(os.path.join(out_dir, name))
                i = j
            i += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
