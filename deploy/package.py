"""`make package`: both deployable formats for one stage, into dist/.

    python -m deploy.package [--stage dev] [--out dist] [--flavour sam|terraform|both]

  dist/{stage}/sam/        sam.yaml + deployment.zip  (sam deploy / aws cloudformation)
  dist/{stage}/terraform/  chalice.tf.json + sealsync-resources.tf.json + deployment.zip

The app is imported with SEALSYNC_COMMIT_TRIGGER=sqs, so the deployed app
has one commit path (S3 -> SQS -> on_commit_queue), and with the stage's
queue and bucket names, which the event decorators read at import.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from . import fix_sam, fix_terraform, policy, regions

ROOT = Path(__file__).resolve().parents[1]
MERGE = ROOT / "deploy" / "sam-merge.yaml"


def names(stage: str) -> fix_terraform.Names:
    cfg = json.loads(policy.CONFIG.read_text())
    env = policy.stage_env(stage, cfg)
    concurrency = cfg["stages"][stage].get("commit_concurrency", 50)
    return fix_terraform.Names(app=cfg["app_name"], stage=stage,
                               bucket=env["SEALSYNC_BUCKET"], table=env["SEALSYNC_TABLE"],
                               queue=env["SEALSYNC_QUEUE"], commit_concurrency=concurrency,
                               regions=regions.plan(stage, cfg["stages"][stage], env))


def render_merge_template(n: fix_terraform.Names) -> str:
    text = MERGE.read_text()
    for key, value in {"bucket": n.bucket, "table": n.table, "queue": n.queue,
                       "commit_concurrency": str(n.commit_concurrency),
                       "app": n.app, "stage": n.stage}.items():
        text = text.replace("{{" + key + "}}", value)
    if "{{" in text:
        raise SystemExit(f"{MERGE}: a placeholder is left: {text[text.index('{{'):][:40]}")
    return text


def chalice_package(stage: str, out: Path, n: fix_terraform.Names, *extra: str,
                    project: Path = ROOT) -> None:
    env = {**os.environ, "SEALSYNC_COMMIT_TRIGGER": "sqs", "SEALSYNC_QUEUE": n.queue,
           "SEALSYNC_BUCKET": n.bucket}
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # chalice needs one; ARNs don't
    chalice = Path(sys.executable).parent / "chalice"
    cmd = [str(chalice), "--project-dir", str(project), "package", "--stage", stage,
           *extra, str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")


def package_sam(stage: str, out: Path, n: fix_terraform.Names, project: Path = ROOT) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    merge = out.parent / "sam-merge.yaml"
    merge.write_text(render_merge_template(n))
    chalice_package(stage, out, n, "--merge-template", str(merge), project=project)
    path = out / "sam.yaml"
    template = yaml.safe_load(path.read_text())
    template = fix_sam.fix(template, n.app, stage)
    if n.regions is not None:
        template = regions.fix_sam(template, n.regions)
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return path


def package_terraform(stage: str, out: Path, n: fix_terraform.Names,
                      project: Path = ROOT) -> Path:
    chalice_package(stage, out, n, "--pkg-format", "terraform", project=project)
    path = out / "chalice.tf.json"
    fixed = fix_terraform.fix(json.loads(path.read_text()), n)
    path.write_text(json.dumps(fixed, indent=2) + "\n")
    (out / "sealsync-resources.tf.json").write_text(
        json.dumps(fix_terraform.resources(n), indent=2) + "\n")
    return path


def package(stage: str, out: Path, flavour: str = "both",
            project: Path = ROOT) -> dict[str, Path]:
    """Package `project` (this repository, or a copy of it: tests) for `stage`."""
    if policy.main(["--check"]) != 0:
        raise SystemExit("IAM policy files are stale: run .venv/bin/python -m deploy.policy")
    n = names(stage)
    made: dict[str, Path] = {}
    base = out / stage
    if flavour in ("sam", "both"):
        shutil.rmtree(base / "sam", ignore_errors=True)
        made["sam"] = package_sam(stage, base / "sam", n, project)
    if flavour in ("terraform", "both"):
        shutil.rmtree(base / "terraform", ignore_errors=True)
        made["terraform"] = package_terraform(stage, base / "terraform", n, project)
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--stage", default="dev")
    ap.add_argument("--out", type=Path, default=ROOT / "dist")
    ap.add_argument("--flavour", choices=("sam", "terraform", "both"), default="both")
    args = ap.parse_args(argv)
    for flavour, path in package(args.stage, args.out, args.flavour).items():
        print(f"{flavour:10} {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


def load(path: Path) -> Any:
    """A packaged template (sam.yaml or *.tf.json) as data."""
    return yaml.safe_load(path.read_text()) if path.suffix == ".yaml" else json.loads(
        path.read_text())


if __name__ == "__main__":
    sys.exit(main())
