"""
Fixtures for the shardkv integration tests.

  start_server(*args, env=None, metrics=True, threads=2) -> skvtest.Server
      starts the real binary on 127.0.0.1 with free ports, --threads 2 and a
      data directory under tmp_path, waits for /health/ready == 200, and on
      teardown sends SIGTERM and checks exit code 0 and a sanitizer-clean
      stderr (stderr is printed when the test failed).
  server
      one node with the default options.
"""
import os

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

    def start(*args, env=None, metrics=True, threads=2):
        s = skvtest.Server(tmp_path / f"node{len(servers)}", args=args, env=env, metrics=metrics, threads=threads)
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
