#!/usr/bin/env python3
"""Runs the commands that markdown docs show, and checks their output.

usage: run_docs.py --tools DIR --root REPO_ROOT [--timeout S] FILE.md [FILE.md ...]

What runs (docs/tests.md says the same, with an example):

  - Only fenced code blocks whose info string is `console` run; ```sh,
    ```yaml, ```cpp, ```text and unmarked blocks are never run.
  - In a console block, a line starting with "$ " is a command. Lines
    starting with "> " right after it continue it (joined with newlines, as
    a shell would join them; a line that is just ">" continues it with an
    empty line).
  - The lines after a command, up to the next "$ " line or the end of the
    block, are its expected output: stdout and stderr merged, in order.
  - A line that is exactly "..." matches zero or more lines.
  - A last expected line "(exit status N)" means the command must exit
    with N; without it the command must exit 0.
  - Trailing spaces on a line, and whether the output ends in a newline,
    are not compared. Everything else is.

Hidden directives, each in an HTML comment on a line of its own outside
code blocks (rendered markdown does not show them):

  <!-- doc-test: wait-for-port 127.0.0.1:7071 -->
      wait, up to 20 s, until that TCP port accepts a connection; fail if
      it never does.
  <!-- doc-test: run COMMAND -->
      run COMMAND like a command, without checking its output; it must
      exit 0. Use it sparingly (e.g. to wait until a hint is delivered).

How a file runs:

  - Each FILE runs in a fresh temporary working directory, removed
    afterwards, holding a symlink `examples` -> REPO_ROOT/examples. Its
    commands run in order there, each with `bash -c`: files written carry
    across blocks, shell variables do not.
  - PATH starts with --tools DIR (cairn, cairn-server, cairn-bench). HOME
    is the working directory; CAIRN_LOG is unset, and so are the proxy
    variables (docs talk to loopback only).
  - If `unshare --net` is permitted (root), each file runs in a private
    network namespace with `lo` up, so the fixed ports the docs show do not
    clash with other tests; if not, this is said once on stderr and files
    run in the host's namespace.
  - All of a file's commands run in one session (setsid). When the file
    ends, or fails, the whole process group gets SIGTERM and, 5 s later,
    SIGKILL: a server a doc starts with `&` never outlives the file.
  - Each command has a timeout (--timeout, 30 s). The first failure ends a
    file: FILE:LINE, the command and a unified diff (expected, actual) are
    printed, and the next file runs.

Exit status: 0 if every file passed, 1 if any failed, 2 for bad usage.
"""

import argparse
import difflib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

WAIT_FOR_PORT_SECONDS = 20
KILL_GRACE_SECONDS = 5
EXIT_STATUS = re.compile(r"^\(exit status (\d+)\)$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)")
DIRECTIVE = re.compile(r"^\s*<!--\s*doc-test:\s*(\S+)\s*(.*?)\s*-->\s*$")
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy",
                   "no_proxy")


class DocError(Exception):
    """A doc that cannot be read as tests (names FILE:LINE)."""


class Step:
    """One thing to do: a command with its expectation, or a directive."""

    def __init__(self, kind, line, text, expected=None, status=0):
        self.kind = kind          # "command", "wait-for-port" or "run"
        self.line = line          # 1-based line in the file
        self.text = text          # the command, or the directive's argument
        self.expected = expected or []
        self.status = status


# --- Reading a doc -----------------------------------------------------------

def parse_console_block(lines, first_line, where):
    """Returns the commands of a console block's lines (fence excluded)."""
    steps = []
    step = None
    continuing = False
    for offset, line in enumerate(lines):
        number = first_line + offset
        if line.startswith("$ ") or line == "$":
            step = Step("command", number, line[2:])
            steps.append(step)
            continuing = True
        elif continuing and (line.startswith("> ") or line == ">"):
            step.text += "\n" + line[2:]
        elif step is None:
            raise DocError(f"{where}:{number}: a console block must start "
                           f"with a '$ ' command, found {line!r}")
        else:
            continuing = False
            step.expected.append(line)
    for step in steps:
        if step.expected:
            status = EXIT_STATUS.match(step.expected[-1])
            if status:
                step.status = int(status.group(1))
                step.expected.pop()
    return steps


def parse_doc(path, where):
    """Returns the steps of a markdown file, in order."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    steps = []
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        fence = FENCE.match(line)
        if fence:
            indent, marker, info = fence.groups()
            start = number
            closing = re.compile(r"^\s*" + re.escape(marker[0]) +
                                 "{" + str(len(marker)) + r",}\s*$")
            body = []
            while number < len(lines) and not closing.match(lines[number]):
                text = lines[number]
                body.append(text[len(indent):] if text.startswith(indent)
                            else text.lstrip())
                number += 1
            if number == len(lines):
                raise DocError(f"{where}:{start}: code block never closed")
            number += 1
            if info == "console":
                steps += parse_console_block(body, start + 1, where)
            continue
        directive = DIRECTIVE.match(line)
        if directive:
            kind, argument = directive.groups()
            if kind not in ("wait-for-port", "run") or not argument:
                raise DocError(f"{where}:{number}: unknown doc-test directive "
                               f"{line.strip()!r} (known: wait-for-port "
                               "HOST:PORT, run COMMAND)")
            steps.append(Step(kind, number, argument))
        elif line.lstrip().startswith("<!--") and "doc-test:" in line:
            raise DocError(f"{where}:{number}: a doc-test directive must be "
                           "alone on its line: <!-- doc-test: ... -->")
    return steps


# --- Comparing output --------------------------------------------------------

def output_lines(text):
    lines = [line.rstrip() for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def matches(expected, actual):
    """Whether `actual` matches `expected`, where a "..." line matches any
    run of lines (none included)."""
    n, k = len(expected), len(actual)
    after = [False] * k + [True]  # expected[i+1:] against actual[j:]
    for i in range(n - 1, -1, -1):
        here = [False] * (k + 1)
        for j in range(k, -1, -1):
            if expected[i] == "...":
                here[j] = after[j] or (j < k and here[j + 1])
            else:
                here[j] = j < k and expected[i] == actual[j] and after[j + 1]
        after = here
    return after[0]


def with_status(lines, status):
    return lines + ([f"(exit status {status})"] if status != 0 else [])


def show_command(step):
    return "$ " + step.text.replace("\n", "\n> ")


# --- Running one file (in its own session, perhaps its own network) ----------

def become_subreaper():
    """Orphaned background processes become our children, so we reap them
    (whatever PID 1 does) and a `kill -0 PID` loop in a doc terminates."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def reap_orphans(keep=None):
    """Reaps exited children other than `keep`; returns keep's exit status
    if it was among them, else None."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return None
        if pid == 0:
            return None
        if keep is not None and pid == keep:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


def bring_loopback_up():
    if shutil.which("ip"):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    import fcntl
    import struct
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def run_shell(command, workdir, env, timeout, output_path):
    """Runs `bash -c command`; returns (exit status or None on timeout, output).
    Output goes to a file, not a pipe, so a background process that keeps
    it open does not make us wait for it."""
    with open(output_path, "wb") as out:
        process = subprocess.Popen(["bash", "-c", command], cwd=workdir, env=env,
                                   stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    status = None
    while status is None and time.monotonic() < deadline:
        status = reap_orphans(keep=process.pid)
        if status is None:
            time.sleep(0.005)
    if status is not None:
        process.returncode = status  # reaped here, not by Popen
    with open(output_path, "rb") as f:
        return status, f.read().decode("utf-8", errors="replace")


def wait_for_port(address):
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + WAIT_FOR_PORT_SECONDS
    while time.monotonic() < deadline:
        reap_orphans()
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def run_steps(steps, where, workdir, tools, timeout, scratch):
    """Runs a file's steps in order; returns (commands checked, passed)."""
    env = dict(os.environ)
    for name in list(env):
        if name == "CAIRN_LOG" or name.lower() in PROXY_VARIABLES:
            del env[name]
    env["PATH"] = tools + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["HOME"] = env["PWD"] = workdir
    checked = 0
    for index, step in enumerate(steps):
        place = f"{where}:{step.line}"
        if step.kind == "wait-for-port":
            if not wait_for_port(step.text):
                print(f"{place}: wait-for-port {step.text}: nothing accepted "
                      f"connections within {WAIT_FOR_PORT_SECONDS} s")
                return checked, False
            continue
        output_path = os.path.join(scratch, f"output.{index}")
        status, output = run_shell(step.text, workdir, env, timeout, output_path)
        actual = output_lines(output)
        if status is None:
            print(f"{place}: timed out after {timeout:g} s:\n{show_command(step)}")
            print("output so far:\n" + "\n".join(actual))
            return checked, False
        if step.kind == "run":
            if status != 0:
                print(f"{place}: hidden set-up command failed (exit status "
                      f"{status}): {step.text}\n" + "\n".join(actual))
                return checked, False
            continue
        checked += 1
        if status != step.status or not matches(step.expected, actual):
            print(f"{place}: output differs:\n{show_command(step)}")
            diff = difflib.unified_diff(with_status(step.expected, step.status),
                                        with_status(actual, status),
                                        "expected", "actual", lineterm="")
            print("\n".join(diff))
            return checked, False
    return checked, True


def run_one_file(args):
    """The child's side: runs args.one_file's steps, writes the result."""
    become_subreaper()
    if args.netns:
        bring_loopback_up()
    checked, passed = 0, False
    try:
        steps = parse_doc(args.one_file, args.where)
        checked, passed = run_steps(steps, args.where, args.workdir,
                                    os.path.abspath(args.tools), args.timeout,
                                    args.scratch)
    except DocError as e:
        print(e)
    except OSError as e:
        print(f"{args.where}: {e}")
    sys.stdout.flush()
    with open(os.path.join(args.scratch, "result.json"), "w") as f:
        json.dump({"checked": checked, "passed": passed}, f)
    return 0


# --- The parent: one child per file ------------------------------------------

def netns_permitted():
    try:
        probe = subprocess.run(["unshare", "--net", "true"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    except OSError as e:
        return False, str(e)
    return probe.returncode == 0, probe.stderr.strip()


def kill_group(pgid):
    """SIGTERM to the group, SIGKILL 5 s later; returns once it is empty."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while time.monotonic() < deadline:
            reap_orphans()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
    print(f"run_docs: process group {pgid} survived SIGKILL", file=sys.stderr)


def run_file(path, where, args, netns):
    """Runs one doc in a child of its own session; returns (checked, passed)."""
    scratch = tempfile.mkdtemp(prefix="run_docs.")
    workdir = os.path.join(scratch, "work")
    os.mkdir(workdir)
    os.symlink(os.path.join(os.path.abspath(args.root), "examples"),
               os.path.join(workdir, "examples"))
    command = [sys.executable, os.path.abspath(__file__), "--tools", args.tools,
               "--root", args.root, "--timeout", str(args.timeout),
               "--one-file", path, "--where", where, "--workdir", workdir,
               "--scratch", scratch]
    if netns:
        command = ["unshare", "--net", "--"] + command + ["--netns"]
    sys.stdout.flush()
    child = subprocess.Popen(command, start_new_session=True)
    try:
        child.wait()
    finally:
        kill_group(child.pid)
        try:
            with open(os.path.join(scratch, "result.json")) as f:
                result = json.load(f)
        except (OSError, ValueError):
            result = {"checked": 0, "passed": False}
            print(f"{where}: the runner's child exited {child.returncode} "
                  "without a result")
        shutil.rmtree(scratch, ignore_errors=True)
    return result["checked"], result["passed"]


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Runs the `console` blocks of markdown docs and checks that\n"
        "each command's output and exit status match the doc.",
        epilog=__doc__.split("\n", 3)[3],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tools", required=True, metavar="DIR",
                        help="directory holding cairn, cairn-server and cairn-bench; "
                        "put first on PATH")
    parser.add_argument("--root", required=True, metavar="REPO_ROOT",
                        help="the repository; REPO_ROOT/examples is linked into "
                        "each file's working directory")
    parser.add_argument("--timeout", type=float, default=30, metavar="S",
                        help="seconds each command may take (default 30)")
    parser.add_argument("--every-page-of", metavar="DIR",
                        help="fail unless every DIR/*.md is among the FILE.md given "
                        "(a page added to DIR but not to the test's list)")
    parser.add_argument("files", nargs="*", metavar="FILE.md")
    # Internal: how the runner invokes itself for one file.
    for name in ("--one-file", "--where", "--workdir", "--scratch"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--netns", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    if args.one_file:
        return run_one_file(args)
    if not args.files:
        print("run_docs: no FILE.md given (see --help)", file=sys.stderr)
        return 2
    if not os.path.isdir(args.tools):
        print(f"run_docs: --tools {args.tools}: not a directory", file=sys.stderr)
        return 2
    root = os.path.abspath(args.root)
    if args.every_page_of:
        given = {os.path.realpath(f) for f in args.files}
        left_out = sorted(f for f in os.listdir(args.every_page_of) if f.endswith(".md")
                          and os.path.realpath(os.path.join(args.every_page_of, f)) not in given)
        if left_out:
            print(f"run_docs: not checked: {', '.join(left_out)} in {args.every_page_of} "
                  "(add them to the list of pages)", file=sys.stderr)
            return 1
    netns, why = netns_permitted()
    if not netns:
        print(f"run_docs: unshare --net is not permitted ({why or 'no reason given'}); "
              "running in the host's network namespace, where the docs' fixed "
              "ports may clash with other programs", file=sys.stderr)
    become_subreaper()
    total, failed = 0, []
    for path in args.files:
        absolute = os.path.abspath(path)
        where = (os.path.relpath(absolute, root)
                 if absolute.startswith(root + os.sep) else path)
        checked, passed = run_file(absolute, where, args, netns)
        total += checked
        print(f"{'ok  ' if passed else 'FAIL'} {where}: {checked} commands")
        if not passed:
            failed.append(where)
    n = len(args.files)
    summary = f"run_docs: {total} commands in {n} {'file' if n == 1 else 'files'} checked"
    print(summary + (f"; {len(failed)} failed: {', '.join(failed)}" if failed
                     else "; all passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
