#!/usr/bin/env python3
"""Recording stand-in for the CLIs a workflow job talks to the cloud with: `pulumi`, `aws`, `gh`, `curl`.

Installed on PATH under those names by tests/workflow_sim.py. Each call appends one JSON line (tool, argv, cwd
and the AWS_*/PULUMI_*/KUBECONFIG environment) to $WORKFLOW_STANDIN_LOG and answers like the real tool would for
the calls the workflows make; anything else exits 2 naming the call, so a new CLI use is seen, not faked.
Arguments are checked the way the real CLI checks them (a flag without a value, an empty value from an unset
variable, a file that does not exist)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FAKE_OIDC_TOKEN = "eyJhbGciOiJSUzI1NiJ9.stand-in-oidc-token.sig"  # what the curl stand-in hands out


def fail(msg: str) -> None:
    print(f"{sys.argv[0]} (stand-in): {msg}", file=sys.stderr)
    sys.exit(2)


def flags(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positional words and `--flag value` pairs; boolean flags map to ''."""
    boolean = {"--yes", "--diff", "--non-interactive", "--refresh", "--expect-no-changes", "--skip-preview",
               "-sSf", "-s", "-S", "-f", "--quiet"}
    words, opts, i = [], {}, 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and a not in boolean:
            if i + 1 >= len(args):
                fail(f"flag needs an argument: {a}")
            if args[i + 1] == "":
                fail(f"{a} was given an empty value (an unset variable?)")
            opts[a] = args[i + 1]
            i += 2
        else:
            if a in boolean:
                opts[a] = ""
            else:
                words.append(a)
            i += 1
    return words, opts


def pulumi(args: list[str]) -> None:
    words, opts = flags(args)
    cmd = " ".join(words[:2]) if words[:1] == ["stack"] else (words[0] if words else "")
    if cmd == "login":
        if opts.get("--oidc-token") != FAKE_OIDC_TOKEN:
            fail(f"login: --oidc-token is not the token the OIDC exchange returned: {opts.get('--oidc-token')!r}")
        print(f"Logged in to pulumi.com as {opts['--oidc-org']}-ci (https://app.pulumi.com/{opts['--oidc-org']})")
        return
    if cmd == "whoami":
        print("ci-bot")
        return
    if cmd in ("preview", "up", "refresh", "stack export"):
        if "/" not in opts.get("--stack", ""):
            fail(f"{cmd}: --stack must be <org>/<stack>, got {opts.get('--stack')!r}")
        if not Path("Pulumi.yaml").exists():
            fail(f"{cmd}: no Pulumi.yaml in {os.getcwd()}")
        stack = opts["--stack"].split("/", 1)[1]
        if cmd != "stack export" and not Path(f"Pulumi.{stack}.yaml").exists():
            fail(f"{cmd}: no stack file Pulumi.{stack}.yaml")
        pack = opts.get("--policy-pack")
        if pack is not None:
            venv_python = Path(pack) / "venv" / "bin" / "python"
            if not (Path(pack) / "PulumiPolicy.yaml").exists() or not venv_python.exists():
                fail(f"--policy-pack {pack}: needs {pack}PulumiPolicy.yaml and the pack's venv {venv_python}")
            # The venv's interpreter starts and finds the policy SDK (a restored venv too), without importing it.
            probe = subprocess.run([str(venv_python), "-c", "import importlib.util, sys; "
                                    "sys.exit(importlib.util.find_spec('pulumi_policy') is None)"],
                                   capture_output=True, text=True)
            if probe.returncode != 0:
                fail(f"--policy-pack {pack}: the pack's venv {venv_python} has no pulumi_policy or does not start: "
                     f"{probe.stderr.strip()}")
        if cmd == "stack export":
            Path(opts["--file"]).write_text(json.dumps({"version": 3, "deployment": {"resources": []}}))
            return
        print(f"{'Previewing' if cmd == 'preview' else 'Updating'} ({opts['--stack']}):\nResources:\n    unchanged")
        return
    fail(f"unknown call: pulumi {' '.join(args)}")


def aws(args: list[str]) -> None:
    words, opts = flags(args)
    if words[:2] == ["eks", "update-kubeconfig"]:
        for need in ("--name", "--region", "--alias"):
            if need not in opts:
                fail(f"eks update-kubeconfig without {need}")
        if not os.environ.get("AWS_ACCESS_KEY_ID"):
            fail("eks update-kubeconfig: no credentials (configure-aws-credentials did not run before)")
        print(f"Added new context {opts['--alias']} to {os.environ.get('KUBECONFIG', '~/.kube/config')}")
        return
    if words[:2] == ["s3", "cp"] and len(words) == 4:
        if not Path(words[2]).is_file():
            fail(f"s3 cp: the source {words[2]} does not exist")
        if not words[3].startswith("s3://") or words[3].startswith("s3:///"):
            fail(f"s3 cp: bad destination {words[3]}")
        if not os.environ.get("AWS_ACCESS_KEY_ID"):
            fail("s3 cp: no credentials")
        print(f"upload: {words[2]} to {words[3]}")
        return
    if words[:1] == ["fis"]:
        fis(words, opts)
        return
    fail(f"unknown call: aws {' '.join(args)}")


def _aws_text(value: object) -> str:
    """The AWS CLI's `--output text` of a query result: scalars as they are (None as "None"), lists tab-joined."""
    if isinstance(value, list):
        return "\t".join(_aws_text(v) for v in value)
    return "None" if value is None else str(value)


def fis(words: list[str], opts: dict[str, str]) -> None:
    """AWS FIS for the game-day workflow: the templates the staging plan holds ($WORKFLOW_FIS_TEMPLATES: a JSON list
    of {id, tags}); an experiment started from one completes at once (startTime/endTime: the last five minutes)."""
    import datetime as dt

    import jmespath  # botocore's query language, as the AWS CLI applies --query

    if not os.environ.get("AWS_ACCESS_KEY_ID"):
        fail(f"fis {words[1]}: no credentials (configure-aws-credentials did not run before)")
    templates = {t["id"]: t for t in json.loads(Path(os.environ["WORKFLOW_FIS_TEMPLATES"]).read_text())}
    now = dt.datetime.now(tz=dt.UTC)
    sub = words[1] if len(words) > 1 else ""
    if sub == "list-experiment-templates":
        doc: dict[str, object] = {"experimentTemplates": list(templates.values())}
    elif sub == "get-experiment-template":
        if opts.get("--id") not in templates:
            fail(f"An error occurred (ResourceNotFoundException): experiment template {opts.get('--id')} not found")
        doc = {"experimentTemplate": templates[opts["--id"]]}
    elif sub == "start-experiment":
        if opts.get("--experiment-template-id") not in templates or not opts.get("--client-token"):
            fail(f"start-experiment: unknown template or no --client-token: {opts}")
        doc = {"experiment": {"id": "EXP" + opts["--client-token"].replace("-", "")[:20],
                              "experimentTemplateId": opts["--experiment-template-id"],
                              "state": {"status": "initiating"}}}
    elif sub in ("get-experiment", "stop-experiment"):
        if not opts.get("--id", "").startswith("EXP"):
            fail(f"{sub}: no experiment {opts.get('--id')!r} was started")
        status = "completed" if sub == "get-experiment" else "stopping"
        doc = {"experiment": {"id": opts["--id"], "state": {"status": status, "reason": "Experiment completed."},
                              "startTime": (now - dt.timedelta(minutes=5)).isoformat(),
                              "endTime": now.isoformat()}}
    else:
        fail(f"unknown call: aws fis {' '.join(words[1:])}")
    query = opts.get("--query")
    result = jmespath.search(query, doc) if query else doc
    print(_aws_text(result) if opts.get("--output") == "text" else json.dumps(result, default=str))


def curl(args: list[str]) -> None:
    _, opts = flags(args)
    url = next((a for a in args if a.startswith("http")), "")
    token, base = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"), os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    if not token or not base:
        fail("the OIDC request variables are not set: does the job have `id-token: write`?")
    if opts.get("-H") != f"Authorization: bearer {token}" or not url.startswith(base + "&audience="):
        fail(f"not the OIDC token request: {' '.join(args)}")
    print(json.dumps({"count": 1, "value": FAKE_OIDC_TOKEN}))


def main() -> None:
    tool = sys.argv.pop(1)  # the wrapper on PATH passes the name it is installed under
    sys.argv[0] = tool
    log = os.environ.get("WORKFLOW_STANDIN_LOG")
    if not log:
        fail("WORKFLOW_STANDIN_LOG is not set")
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "PULUMI_", "KUBECONFIG"))}
    with open(log, "a") as f:
        f.write(json.dumps({"tool": tool, "argv": sys.argv[1:], "cwd": os.getcwd(), "env": env}) + "\n")
    {"pulumi": pulumi, "aws": aws, "curl": curl}.get(tool, lambda a: fail(f"unknown call: {tool} {' '.join(a)}"))(
        sys.argv[1:])


if __name__ == "__main__":
    main()
