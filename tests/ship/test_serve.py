"""`sluice serve`, the image's default command, starts gunicorn with app/web/serving.py and answers.

The demo and the end-to-end tests start gunicorn themselves, so only this (and the image test) runs
the command users run; it once pointed gunicorn at a configuration file that did not exist.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import requests

from app.cli.demo.stack import Process, free_port, wait_until


def test_sluice_serve_answers_healthz(tmp_path):
    shutil.copy(Path(__file__).resolve().parents[2] / "examples" / "sluice.yaml", tmp_path / "sluice.yaml")
    port = free_port()
    env = {
        **os.environ,
        "SLUICE_CONFIG": str(tmp_path / "sluice.yaml"),
        "SLUICE_API_TOKEN": "serve-test-token-9f3a7c2e5b1d8406",
    }
    command = [sys.executable, "-c", "from app.cli.main import main; main()", "serve"]
    proc = Process("sluice-serve", [*command, "--bind", f"127.0.0.1:{port}", "--workers", "1"], tmp_path, env)
    proc.start()
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        wait_until(lambda: requests.get(url, timeout=1).ok, 30, "sluice serve", proc.proc, proc.log)
        assert requests.get(url, timeout=2).status_code == 200
    finally:
        proc.stop()
