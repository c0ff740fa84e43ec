"""Resources that moved to another component keep their identity: each direct child of the new component gets a
Pulumi alias naming where it lived before (old parent, old logical name), so `pulumi up` moves it in the state
instead of deleting and recreating it ("Resource option: aliases", https://www.pulumi.com/docs/iac/concepts/options/aliases/).

Children are named `<component name>-<what>` (the Pulumi convention): a child `<new>-<what>` was `<old>-<what>`
under the old parent. The offline plan records the aliases and `make plan-diff` matches them (infra/offline/diff.py).
"""

from __future__ import annotations

from typing import Any

import pulumi

# Where a component lived before, by its URN's parts: the (type token, logical name) of its old parent.
OldParent = tuple[str, str]


def component_urn(type_token: str, name: str) -> str:
    """The URN of a component registered at the top of the stack (no parent but the stack)."""
    return f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{type_token}::{name}"


def moved_from(component: pulumi.Resource, new_name: str, old_parent: OldParent | pulumi.Resource,
               old_name: str) -> pulumi.ResourceTransformation:
    """A transformation for `component`'s options: every direct child gets the alias of its old identity."""

    def alias(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if args.opts.parent is not component or not args.name.startswith(new_name + "-"):
            return None
        parent: Any = old_parent if isinstance(old_parent, pulumi.Resource) else component_urn(*old_parent)
        moved = pulumi.Alias(name=old_name + args.name[len(new_name):], parent=parent)
        opts = pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(aliases=[moved]))
        return pulumi.ResourceTransformationResult(args.props, opts)

    return alias
