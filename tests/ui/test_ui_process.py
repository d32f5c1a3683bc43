"""The UI as a real process (the `ui` stack part): sessions survive a restart, config errors exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from localstack.config import REPO_ROOT
from localstack.parts import ui
from localstack.supervisor import Supervisor
from tests.helpers.ui import USER


def test_session_survives_ui_restart(backend):
    (comp,) = ui.components(backend)
    with Supervisor(backend) as sup:
        sup.start(comp)
        resp = httpx.post(backend.url("ui", "/auth/login"), json={"email": USER[0], "password": USER[1]}, timeout=30)
        assert resp.status_code == 200, resp.text
        cookie = resp.headers["set-cookie"].split(";")[0]
        headers = {"cookie": cookie}
        assert httpx.get(backend.url("ui", "/auth/status"), headers=headers).json()["authenticated"] is True
        sup.stop("ui")  # scale to zero
        sup.start(comp)
        status = httpx.get(backend.url("ui", "/auth/status"), headers=headers).json()
        assert status["authenticated"] is True and status["principal"]["email"] == USER[0]
        me = httpx.get(backend.url("ui", "/api/auth/me"), headers=headers)
        assert me.status_code == 200 and me.json()["principal"]["email"] == USER[0]
    secret = backend.path("ui", "sessions", "cookie-secret")
    assert secret.stat().st_mode & 0o077 == 0  # the signing secret is private to the UI's user


def test_bad_configuration_exits_2_with_a_message():
    env = {**os.environ, "UI_REQUIRE_HTTPS": "sometimes", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "functions.ui"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "UI_REQUIRE_HTTPS" in proc.stderr
