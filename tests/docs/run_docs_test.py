#!/usr/bin/env python3
"""Tests of run_docs.py: docs that must pass, and docs that must fail.

usage: run_docs_test.py [unittest options]

Each case writes a markdown file, runs the runner on it as a separate
process (with this interpreter), and checks its exit status and report.
Needs bash; no cairn binaries (the --tools directory holds a fake `cairn`).
"""

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_docs.py")


class RunDocsTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="run_docs_test.")
        self.tmp = self.dir.name
        self.root = os.path.join(self.tmp, "root")
        os.makedirs(os.path.join(self.root, "examples"))
        with open(os.path.join(self.root, "examples", "hello.txt"), "w") as f:
            f.write("hello from examples\n")
        self.tools = os.path.join(self.tmp, "tools")
        os.mkdir(self.tools)
        cairn = os.path.join(self.tools, "cairn")
        with open(cairn, "w") as f:
            f.write("#!/bin/sh\necho \"fake cairn $*\"\n")
        os.chmod(cairn, 0o755)
        self.pid_files = []

    def tearDown(self):
        for path in self.pid_files:  # never leave a process behind, even on failure
            try:
                with open(path) as f:
                    os.kill(int(f.read()), 9)
            except (OSError, ValueError):
                pass
        self.dir.cleanup()

    def doc(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def run_docs(self, *paths, timeout=None):
        command = [sys.executable, RUNNER, "--tools", self.tools, "--root", self.root]
        if timeout is not None:
            command += ["--timeout", str(timeout)]
        env = dict(os.environ, CAIRN_LOG="debug")
        result = subprocess.run(command + list(paths), env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                timeout=120)
        return result.returncode, result.stdout

    def assert_passes(self, text):
        status, output = self.run_docs(self.doc("doc.md", text))
        self.assertEqual(status, 0, output)
        return output

    def assert_fails(self, text, *fragments):
        status, output = self.run_docs(self.doc("doc.md", text))
        self.assertEqual(status, 1, output)
        for fragment in fragments:
            self.assertIn(fragment, output)
        return output

    # --- docs that pass ---------------------------------------------------

    def test_output_exit_status_wildcard_and_continuation_pass(self):
        output = self.assert_passes("""\
            # A doc

            ```console
            $ echo out; echo err >&2; echo out again
            out
            err
            out again
            $ seq 5
            1
            ...
            5
            $ seq 3
            ...
            1
            2
            3
            ...
            $ exit 3
            (exit status 3)
            $ cat <<'EOF'
            > one
            >
            > two
            > EOF
            one

            two
            ```
            """)
        self.assertIn("5 commands", output)
        self.assertIn("run_docs: 5 commands in 1 file checked; all passed", output)

    def test_environment_and_state_across_blocks(self):
        self.assert_passes("""\
            ```console
            $ cairn get k    # --tools comes first on PATH
            fake cairn get k
            $ cat examples/hello.txt
            hello from examples
            $ test "$HOME" = "$PWD" && echo "${CAIRN_LOG-unset}"
            unset
            $ echo kept >state.txt
            $ X=1
            ```

            Text between blocks.

            ```console
            $ cat state.txt; echo "X=${X-}"
            kept
            X=
            $ ls
            examples
            state.txt
            ```
            """)

    def test_only_console_blocks_run(self):
        output = self.assert_passes("""\
            ```sh
            $ exit 1
            ```

            ```text
            $ echo a
            b
            ```

            ```
            $ false
            ```

            ```console
            $ true
            ```
            """)
        self.assertIn("1 commands", output)

    def test_run_directive_runs_unchecked(self):
        self.assert_passes("""\
            <!-- doc-test: run echo ignored output; touch made -->

            ```console
            $ ls made
            made
            ```
            """)

    def test_wait_for_port_waits_for_a_background_listener(self):
        with socket.socket() as s:  # a port free here, and so in a new namespace
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        listener = (f"import socket, time; time.sleep(1); s = socket.socket(); "
                    f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)")
        self.assert_passes(f"""\
            ```console
            $ {sys.executable} -c "{listener}" &
            ```

            <!-- doc-test: wait-for-port 127.0.0.1:{port} -->

            ```console
            $ {sys.executable} -c "import socket; socket.create_connection(('127.0.0.1', {port})); print('connected')"
            connected
            ```
            """)

    def test_background_processes_are_killed_when_the_file_ends(self):
        pid_file = os.path.join(self.tmp, "sleep.pid")
        self.pid_files.append(pid_file)
        self.assert_passes(f"""\
            ```console
            $ sleep 300 & echo $! >{pid_file}
            ```
            """)
        with open(pid_file) as f:
            pid = int(f.read())
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)

    def test_background_processes_are_killed_when_the_file_fails(self):
        pid_file = os.path.join(self.tmp, "sleep.pid")
        self.pid_files.append(pid_file)
        self.assert_fails(f"""\
            ```console
            $ sleep 300 & echo $! >{pid_file}
            $ false
            ```
            """)
        with open(pid_file) as f:
            pid = int(f.read())
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)

    # --- docs that fail -------------------------------------------------------

    def test_wrong_output_fails_with_place_and_diff(self):
        output = self.assert_fails("""\
            # Title

            ```console
            $ echo right
            right
            $ echo actual
            > echo second
            expected
            $ echo never run
            ```
            """, "doc.md:6: output differs", "$ echo actual\n> echo second",
            "--- expected", "+++ actual", "-expected", "+actual", "+second")
        self.assertNotIn("never run", output)
        self.assertIn("run_docs: 2 commands in 1 file checked; 1 failed", output)

    def test_missing_line_fails(self):
        self.assert_fails("""\
            ```console
            $ printf 'a\\nb\\n'
            a
            ```
            """, "+b")

    def test_wrong_exit_status_fails(self):
        self.assert_fails("""\
            ```console
            $ exit 2
            (exit status 3)
            ```
            """, "-(exit status 3)", "+(exit status 2)")

    def test_unexpected_nonzero_exit_fails(self):
        self.assert_fails("""\
            ```console
            $ echo out; exit 1
            out
            ```
            """, "+(exit status 1)")

    def test_expected_nonzero_exit_that_succeeds_fails(self):
        self.assert_fails("""\
            ```console
            $ true
            (exit status 1)
            ```
            """, "-(exit status 1)")

    def test_wildcard_does_not_match_what_is_absent(self):
        self.assert_fails("""\
            ```console
            $ seq 3
            1
            ...
            4
            ```
            """, "-4")

    def test_wildcard_only_matches_whole_lines(self):
        self.assert_fails("""\
            ```console
            $ echo abc
            a...
            ```
            """, "-a...")

    def test_timeout_fails(self):
        doc = self.doc("slow.md", """\
            ```console
            $ echo started; sleep 20
            started
            ```
            """)
        start = time.monotonic()
        status, output = self.run_docs(doc, timeout=1)
        self.assertEqual(status, 1, output)
        self.assertIn("slow.md:2: timed out after 1 s", output)
        self.assertLess(time.monotonic() - start, 15)

    def test_failed_run_directive_fails(self):
        self.assert_fails("""\
            <!-- doc-test: run echo broken; exit 4 -->
            """, "doc.md:1: hidden set-up command failed (exit status 4)", "broken")

    def test_unknown_directive_and_output_before_command_fail(self):
        self.assert_fails("<!-- doc-test: wait-for 127.0.0.1:1 -->\n",
                          "doc.md:1: unknown doc-test directive")
        self.assert_fails("```console\nhello\n$ true\n```\n",
                          "doc.md:2: a console block must start with a '$ ' command")

    def test_a_failing_file_does_not_stop_the_next(self):
        bad = self.doc("bad.md", "```console\n$ echo no\nyes\n```\n")
        good = self.doc("good.md", "```console\n$ echo yes\nyes\n```\n")
        status, output = self.run_docs(bad, good)
        self.assertEqual(status, 1, output)
        self.assertIn("FAIL bad.md", output.replace(self.tmp + os.sep, ""))
        self.assertIn("ok   good.md", output.replace(self.tmp + os.sep, ""))
        self.assertIn("run_docs: 2 commands in 2 files checked; 1 failed", output)


if __name__ == "__main__":
    unittest.main()
