"""`stripe` is for the billing handlers only: the API and commit modules,
the scheduler's jobs and the webhook's module load without it (cold start)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_cold_path_module_imports_stripe() -> None:
    code = ("import sys, app, chalicelib.api, chalicelib.commit, chalicelib.batch_commit, "
            "chalicelib.account, chalicelib.billing, chalicelib.jobs, chalicelib.config; "
            "print('stripe' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_the_payments_adapter_does() -> None:
    code = ("import sys; from chalicelib.adapters.payments import Payments; "
            "Payments('sk_test_x', 'http://127.0.0.1:9', 'whsec'); "
            "print('stripe' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "True"
