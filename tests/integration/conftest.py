"""
Fixtures for the shardkv integration tests.

  start_server(*args, env=None, metrics=True, threads=2, data_dir=None, preexec_fn=None) -> skvtest.Server
      starts the real binary on 127.0.0.1 with free ports, --threads 2 and a
      data directory under tmp_path (or data_dir), waits for
      /health/ready == 200, and on teardown sends SIGTERM and checks exit
      code 0 and a sanitizer-clean stderr (stderr is printed when the test
      failed).  Server.restart() / kill9() + start() bring a node back on
      the same data directory.
  server
      one node with the default options.
  tmpfs(size="2m") -> pathlib.Path
      mounts a tmpfs of that size under tmp_path (root only, else the test is
      skipped) and unmounts it after the nodes stopped; request it before
      start_server.
"""
import os
import subprocess
import time

import pytest

import skvtest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_report_header(config):
    return [f"shardkv binary: {skvtest.BIN} (sanitized: {skvtest.SANITIZED})"]


@pytest.fixture(scope="session", autouse=True)
def _binary_exists():
    if not os.access(skvtest.BIN, os.X_OK):
        pytest.exit(f"shardkv binary not found at {skvtest.BIN}; build it or set SHARDKV_BIN", returncode=2)


@pytest.fixture
def start_server(tmp_path, request):
    servers = []

    def start(*args, env=None, metrics=True, threads=2, data_dir=None, preexec_fn=None):
        s = skvtest.Server(tmp_path / f"node{len(servers)}", args=args, env=env, metrics=metrics, threads=threads,
                           data_dir=data_dir, preexec_fn=preexec_fn)
        servers.append(s)
        s.start()
        return s

    yield start

    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    problems = []
    for s in servers:
        try:
            s.stop(timeout=15)
        except Exception as e:  # a hung shutdown: kill it, then report
            s.kill()
            problems.append(f"shutdown of node on port {s.port} failed: {e!r}")
        if failed:
            print(f"---- stderr of node on port {s.port} ----\n{s.stderr()}")
        try:
            s.assert_clean_exit()
        except AssertionError as e:
            problems.append(str(e))
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def server(start_server):
    return start_server()


@pytest.fixture
def tmpfs(tmp_path):
    mounts = []

    def mount(size="2m"):
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        mnt = tmp_path / f"tmpfs{len(mounts)}"
        mnt.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
        mounts.append(mnt)
        return mnt

    yield mount
    for mnt in mounts:
        for _ in range(50):
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
