"""A real Prefect server on loopback, the refresh served to it, runs triggered through it.

The server and the serving process are started the way the README tells an administrator to, and both
are stopped with SIGTERM at the end (a process that ignores it fails the test).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flows.readers import read_table
from transforms.contract import TESTS

pytestmark = pytest.mark.slow
LOG = logging.getLogger("gridsweep.tests.server")
SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"
BIN = Path(sys.executable).parent
DEPLOYMENT = "gridsweep-inbox-refresh/street-refresh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GRIDSWEEP_"))}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", GX_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false", PYTHONPATH=str(SAMPLES.parent))
    return env


def stop(proc: subprocess.Popen, what: str) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"{what} ignored SIGTERM")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect_server_home")
    port = free_port()
    env = base_env(home)
    log = open(home / "server.log", "w")
    t = time.monotonic()
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("Prefect server did not start:\n" + (home / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        LOG.warning("server answered after %.1f s", time.monotonic() - t)
        yield api, env
    finally:
        stop(proc, "prefect server")
        log.close()


def campaign(root: Path) -> Path:
    cfg = root / "campaign.toml"
    cfg.write_text(
        '[round]\nsince = "2022-05-18T18:00"\nas_of = "2022-05-20T18:00"\n\n'
        '[inbox]\npath = "inbox"\narchive = "archive"\nsettle_seconds = 0\n\n[paths]\nout = "out"\nstate = "state"\n',
        encoding="utf-8",
    )
    return cfg


def gridsweep(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "gridsweep"), *args], env=env, capture_output=True, text=True, timeout=600)


def test_served_refresh_on_a_real_server(server, tmp_path):
    api, env = server
    env = dict(env, PREFECT_API_URL=api)
    cfg = campaign(tmp_path)
    serve_log = open(tmp_path / "serve.log", "w")
    serving = subprocess.Popen([str(BIN / "gridsweep"), "serve", "--config", str(cfg)], env=env, stdout=serve_log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            r = httpx.get(f"{api}/deployments/name/{DEPLOYMENT}", timeout=5)
            if r.status_code == 200:
                break
            assert serving.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the deployment was never registered"
            time.sleep(1)
        deployment = r.json()
        (schedule,) = deployment["schedules"]
        assert schedule["schedule"]["interval"] == 7200
        assert schedule["schedule"]["timezone"] == "Asia/Shanghai"
        assert schedule["active"]

        for source, name in (("roster", "roster.csv"), ("tests", "tests.csv"), ("vaccinations", "vaccinations.csv")):
            (tmp_path / "inbox" / source).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SAMPLES / name, tmp_path / "inbox" / source / name)
        shutil.copyfile(SAMPLES / "tests.csv", tmp_path / "inbox" / "tests" / "tests_copy.csv")  # dropped twice

        done = gridsweep(env, "trigger", "--wait", "300")
        assert done.returncode == 0 and "COMPLETED" in done.stdout, done.stdout + done.stderr
        out = tmp_path / "out"
        assert (out / "call_list.csv").exists() and list((out / "sheets").rglob("*.xlsx"))
        run = json.loads((out / "run.json").read_text(encoding="utf-8"))
        dropped_once = read_table(SAMPLES / "tests.csv", TESTS).frame.height
        assert run["accounting"]["tests"]["rows_read"] == dropped_once  # the second copy was not loaded
        assert len(list((tmp_path / "archive").rglob("*.csv"))) == 4

        artifacts = httpx.post(f"{api}/artifacts/filter", json={}, timeout=10).json()
        keys = {a["key"] for a in artifacts}
        assert {"coverage-by-community", "refresh-summary"} <= keys
        text = json.dumps(artifacts, ensure_ascii=False)
        roster = (SAMPLES / "roster.csv").read_text(encoding="utf-8-sig").splitlines()[1:50]
        for line in roster:
            cells = line.split(",")
            assert cells[4] not in text and cells[1] not in text  # no phones or names in artifacts

        before = (out / "run.json").read_bytes()
        bad = tmp_path / "inbox" / "tests" / "broken.csv"
        bad.write_text("采样编号,采样时间\nT1,2022-05-20 10:00\n", encoding="utf-8")
        failed = gridsweep(env, "trigger", "--wait", "300")
        assert failed.returncode == 1 and "FAILED" in failed.stdout, failed.stdout + failed.stderr
        assert bad.exists() and (out / "run.json").read_bytes() == before

        bad.unlink()
        t = time.monotonic()
        again = gridsweep(env, "trigger", "--wait", "300")
        assert again.returncode == 0 and "COMPLETED" in again.stdout
        LOG.warning("no-change refresh through the server took %.1f s", time.monotonic() - t)
        assert (out / "run.json").read_bytes() == before  # nothing new: the sheets stand
    finally:
        stop(serving, "gridsweep serve")
        serve_log.close()
