"""deploy/systemd/parley.service: systemd accepts it, and what it promises matches the binary:
it runs `serve --config`, does not restart on the exit code of a bad configuration, and waits
longer than the default drain before SIGKILL."""
import os
import re
import subprocess
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UNIT = os.path.join(ROOT, "deploy", "systemd", "parley.service")
ANALYZE = "/usr/bin/systemd-analyze"
DEFAULT_DRAIN_S = 10  # http.drain_timeout_ms's default (docs/operations.md)


def settings():
    out = {}
    with open(UNIT, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")):
                key, _, value = line.partition("=")
                out.setdefault(key, []).append(value)
    return out


class SystemdUnitTest(unittest.TestCase):
    def test_systemd_accepts_the_unit(self):
        if not os.access(ANALYZE, os.X_OK):
            self.fail(f"{ANALYZE} is missing: install the Debian package 'systemd' "
                      "(make deps / deploy/local/install-deps.sh)")
        binary = os.environ.get("PARLEY_BIN", os.path.join(ROOT, "build", "parley"))
        with open(UNIT, encoding="utf-8") as f:
            text = f.read()
        # The installed paths do not exist here: point them at the build and an optional file.
        text = text.replace("/usr/local/bin/parley", binary)
        text = re.sub(r"^EnvironmentFile=.*$", "EnvironmentFile=-/nonexistent/parley.env", text,
                      flags=re.M)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "parley.service")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            proc = subprocess.run([ANALYZE, "verify", path], capture_output=True, text=True,
                                  timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(proc.stderr.strip(), "", "systemd-analyze warned")

    def test_runs_serve_with_the_config_file(self):
        exec_start = settings()["ExecStart"]
        self.assertEqual(exec_start, ["/usr/local/bin/parley serve --config /etc/parley/parley.json"])

    def test_bad_configuration_is_not_restarted(self):
        binary = os.environ.get("PARLEY_BIN")
        if not binary:
            self.skipTest("PARLEY_BIN not set (ctest sets it)")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
        env["PARLEY_HTTP_PORT"] = "not-a-port"
        proc = subprocess.run([binary, "serve"], env=env, capture_output=True, text=True,
                              timeout=60)
        self.assertIn("invalid configuration", proc.stderr)
        prevented = " ".join(settings()["RestartPreventExitStatus"]).split()
        self.assertIn(str(proc.returncode), prevented)
        self.assertEqual(settings()["Restart"], ["on-failure"])

    def test_waits_longer_than_the_drain_before_sigkill(self):
        stop = settings()["TimeoutStopSec"][0]
        self.assertTrue(stop.endswith("s"), stop)
        self.assertGreater(int(stop[:-1]), DEFAULT_DRAIN_S)
        self.assertEqual(settings()["KillSignal"], ["SIGTERM"])


if __name__ == "__main__":
    unittest.main()
