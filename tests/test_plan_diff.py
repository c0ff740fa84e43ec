"""`make plan-diff` (infra/offline/diff.py): what `pulumi preview --diff` would print, from two offline plans."""

from __future__ import annotations

import json
from typing import Any

from infra.offline.diff import comment_marker, diff_plans, main, render, render_markdown
from infra.offline.plan import PlanResult, plan_document, plan_text
from infra.offline.retained import render as render_imports
from infra.offline.retained import retained


def _doc(*resources: dict[str, Any], stack: str = "staging") -> dict[str, Any]:
    return {"stack": stack, "resources": list(resources)}


def _res(type_: str, name: str, inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"urn": f"urn:pulumi:staging::p::{type_}::{name}", "type": type_, "name": name, "inputs": inputs,
            **extra}


def test_one_threshold_change_is_the_only_change_printed(planned: dict[str, PlanResult], run_stack: Any) -> None:
    base = planned["staging"]
    old_threshold = base.plan.config.emf_edge.alarms.error_count
    new_threshold = old_threshold + 7
    changed = run_stack("staging", overrides={"emfEdge": {"alarms": {"errorCount": new_threshold}}})
    diff = diff_plans(plan_document(base), plan_document(changed))

    # The alarms that watch the edge error count: the ones whose threshold is that setting in the base plan.
    watching = {r.name for r in base.plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
                if r.inputs.get("threshold") == old_threshold and "error" in r.name}
    assert watching, "no alarm uses the edge error-count threshold"
    alarms = [c for c in diff.changes if c.type == "aws:cloudwatch/metricAlarm:MetricAlarm"]
    assert {(c.op, c.name) for c in alarms} == {("update", name) for name in watching}
    for change in alarms:
        assert [(p.path, p.old, p.new) for p in change.properties] == [("threshold", old_threshold, new_threshold)]
    # Besides the alarms, only the dashboards' threshold lines that draw this setting move with it.
    others = [c for c in diff.changes if c not in alarms]
    assert {c.type for c in others} <= {"aws:cloudwatch/dashboard:Dashboard"} and all(c.op == "update" for c in others)
    for p in (p for c in others for p in c.properties):
        assert ".annotations.horizontal[" in p.path, p
        assert (p.old, p.new) == (old_threshold, new_threshold) or (
            p.path.endswith(".label") and p.new == p.old.replace(f"{old_threshold:g}", f"{new_threshold:g}")), p
    text = render(diff)
    assert text.count(f"~ threshold: {old_threshold:g} => {new_threshold:g}") == len(watching)
    assert f"{len(diff.changes)} to update" in text and "warning" not in text


def test_replacing_a_fixed_name_warns_and_names_the_cause() -> None:
    old = _doc(_res("aws:s3/bucket:Bucket", "b", {"bucket": "akidb-b", "objectLockEnabled": False}))
    new = _doc(_res("aws:s3/bucket:Bucket", "b", {"bucket": "akidb-b", "objectLockEnabled": True}))
    diff = diff_plans(old, new)
    assert [c.op for c in diff.changes] == ["replace"]
    assert diff.changes[0].properties[0].replaces
    assert len(diff.warnings) == 1 and "akidb-b" in diff.warnings[0] and "deleteBeforeReplace" in diff.warnings[0]
    assert "objectLockEnabled changed" in diff.warnings[0]


def test_a_replacement_under_a_new_name_does_not_warn() -> None:
    # Create before delete: the new name exists beside the old one until the old is deleted (no clash).
    old = _doc(_res("aws:lambda/function:Function", "fn", {"name": "akidb-fn", "memorySize": 128}))
    new = _doc(_res("aws:lambda/function:Function", "fn", {"name": "akidb-fn2", "memorySize": 128}))
    diff = diff_plans(old, new)
    assert [c.op for c in diff.changes] == ["replace"] and diff.warnings == []


def test_delete_before_replace_warns_of_downtime() -> None:
    old = _doc(_res("aws:s3/bucket:Bucket", "b", {"bucket": "x"}, options={"deleteBeforeReplace": True}))
    new = _doc(_res("aws:s3/bucket:Bucket", "b", {"bucket": "y"}, options={"deleteBeforeReplace": True}))
    assert "downtime" in diff_plans(old, new).warnings[0]


def test_update_of_a_mutable_property_is_no_replacement() -> None:
    old = _doc(_res("aws:sns/topic:Topic", "t", {"name": "a", "displayName": "x"}))
    new = _doc(_res("aws:sns/topic:Topic", "t", {"name": "a", "displayName": "y"}))
    diff = diff_plans(old, new)
    assert [c.op for c in diff.changes] == ["update"] and not diff.warnings


def test_secrets_stay_masked_and_json_documents_are_compared_inside() -> None:
    policy_old = json.dumps({"Statement": [{"Action": "sns:Publish", "Effect": "Allow"}]})
    policy_new = json.dumps({"Statement": [{"Action": "sns:*", "Effect": "Allow"}]})
    old = _doc(_res("aws:sns/topicPolicy:TopicPolicy", "p", {"policy": policy_old}),
               _res("kubernetes:core/v1:Secret", "s", {"stringData": {"key": "[secret]"}}))
    new = _doc(_res("aws:sns/topicPolicy:TopicPolicy", "p", {"policy": policy_new}),
               _res("kubernetes:core/v1:Secret", "s", {"stringData": {"key": "plain-text-now"}}))
    diff = diff_plans(old, new)
    paths = {p.path: p for c in diff.changes for p in c.properties}
    assert paths["policy.Statement[0].Action"].new == "sns:*"
    assert paths["stringData.key"].old == "[secret]" and paths["stringData.key"].new == "[secret]"
    assert "plain-text-now" not in render(diff)


def test_create_and_delete() -> None:
    a = _res("aws:sqs/queue:Queue", "a", {"name": "a"})
    b = _res("aws:sqs/queue:Queue", "b", {"name": "b"})
    diff = diff_plans(_doc(a), _doc(b))
    assert sorted((c.op, c.name) for c in diff.changes) == [("create", "b"), ("delete", "a")]


def test_a_resource_moved_by_its_alias_is_neither_created_nor_deleted() -> None:
    old = _res("aws:sqs/queue:Queue", "dashboards-q", {"name": "q", "delaySeconds": 0})
    moved = _res("aws:sqs/queue:Queue", "synthetics-q", {"name": "q", "delaySeconds": 0},
                 options={"aliases": [old["urn"]]})
    diff = diff_plans(_doc(old), _doc(moved))
    assert diff.changes == [] and diff.moved == {moved["urn"]: old["urn"]}
    assert "1 resource(s) moved by their aliases" in render(diff)
    changed = {**moved, "inputs": {"name": "q", "delaySeconds": 5}}
    assert [(c.op, c.name) for c in diff_plans(_doc(old), _doc(changed)).changes] == [("update", "synthetics-q")]
    unaliased = {**moved, "options": {}}
    assert sorted(c.op for c in diff_plans(_doc(old), _doc(unaliased)).changes) == ["create", "delete"]


def test_the_plan_records_where_moved_resources_lived(planned: dict[str, PlanResult]) -> None:
    """Every resource of the components split out of dashboards and slo-alerting names its old URN."""
    for result in planned.values():
        entries = plan_document(result)["resources"]
        moved = [e for e in entries if e["parent"] in ("synthetics", "alerting-path", "cost-watch",
                                                       "slo-alerting-runbooks")]
        assert moved
        for e in moved:
            aliases = (e.get("options") or {}).get("aliases", [])  # with the SDK's own type aliases (BucketV2)
            old_parent = "akidb:slo-alerting:SloAlerting$" if e["parent"] == "slo-alerting-runbooks" else \
                "akidb:dashboards:Dashboards$"
            assert any(f"::{old_parent}{e['type']}::" in a for a in aliases), (e["urn"], aliases)


def test_markdown_carries_the_stack_marker() -> None:
    body = render_markdown(diff_plans(_doc(), _doc(), base="main"))
    assert body.startswith(comment_marker("staging")) and "no changes" in body


def test_saved_plans_from_the_command_line(tmp_path: Any, capsys: Any) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(plan_text(_doc(_res("aws:sns/topic:Topic", "t", {"name": "a", "displayName": "x"}))))
    new.write_text(plan_text(_doc(_res("aws:sns/topic:Topic", "t", {"name": "a", "displayName": "y"}))))
    assert main(["--stack", "staging", "--plan", str(old), "--new", str(new), "--markdown",
                 str(tmp_path / "c.md")]) == 0
    assert '~ displayName: "x" => "y"' in capsys.readouterr().out
    assert (tmp_path / "c.md").read_text().startswith(comment_marker("staging"))


def test_against_a_git_ref_plans_it_in_a_worktree(planned: dict[str, PlanResult], tmp_path: Any,
                                                  capsys: Any) -> None:
    """What the PR workflow runs: the base ref planned in a worktree, with the same stand-in secrets as the
    working tree (the stack files hold none), compared with this tree's plan."""
    new = tmp_path / "new.json"
    new.write_text(plan_text(plan_document(planned["staging"])))
    assert main(["--stack", "staging", "--against", "HEAD", "--offline-secrets", "--new", str(new)]) == 0, \
        capsys.readouterr().err
    assert "Plan diff of stack 'staging' against HEAD" in capsys.readouterr().out


def test_bad_plan_file_is_a_clear_error(tmp_path: Any, capsys: Any) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    assert main(["--stack", "staging", "--plan", str(bad), "--new", str(bad)]) == 2
    assert "expected a JSON object" in capsys.readouterr().err


def test_import_lines_cover_every_retained_resource(planned: dict[str, PlanResult]) -> None:
    for stack, result in planned.items():
        doc = plan_document(result)
        expected = {(r["type"], r["name"]) for r in doc["resources"]
                    if r.get("custom") and ((r.get("options") or {}).get("retainOnDelete")
                                            or (r.get("options") or {}).get("protect")
                                            or r["inputs"].get("skipDestroy"))}
        assert expected, f"{stack}: nothing retained (the edge function must be)"
        items = retained(doc)
        assert {(i.type, i.name) for i in items} == expected
        text = render_imports(stack, items)
        for item in items:
            entry = next(r for r in doc["resources"] if (r["type"], r["name"]) == (item.type, item.name))
            physical = entry["inputs"].get("name") or entry["inputs"].get("bucket") or entry["inputs"].get("role")
            assert physical is None or physical in item.import_id, (stack, item)
            assert "None" not in item.import_id and "Stack$" not in item.command(stack)
            assert item.command(stack) in text and f"--protect={'true' if item.protect else 'false'}" in text
        assert text.count("pulumi import ") == len(items)
