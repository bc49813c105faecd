"""mtu-clamp (pre-ADD), in Python: pods in the listed namespaces get a smaller MTU.

    [hooks.config]
    namespaces = ["tunnelled"]
    mtu = 1400

Built into a component with componentize-py (see build.sh); the bindings come from hooks-sdk/wit.
"""
import json

import wit_world
from componentize_py_types import Err
from wit_world import log
from wit_world.imports.types import AddResult, Attachment, HookError, Level, Plan, Rule


def fail(message: str) -> Err:
    return Err(HookError(message=message))


def parse(config_text: str) -> dict:
    """The config table, checked: what validate_config refuses never reaches a pod."""
    try:
        config = json.loads(config_text or "{}")
    except ValueError as e:
        raise fail(f"config is not JSON: {e}")
    mtu = config.get("mtu")
    if not isinstance(mtu, int) or not 68 <= mtu <= 65535:
        raise fail(f"field mtu: must be an integer in 68-65535, got {mtu!r}")
    return config


class WitWorld(wit_world.WitWorld):
    def validate_config(self, config: str) -> None:
        parse(config)

    def pre_add(self, attachment: Attachment, plan: Plan) -> Plan:
        # Any exception other than Err traps the hook; turn every problem into a hook error instead.
        config = parse(attachment.config)
        mtu = config["mtu"]
        if attachment.pod_namespace in config.get("namespaces", []):
            if plan.mtu is None or plan.mtu > mtu:
                log(Level.INFO, f"mtu-clamp: {attachment.pod_namespace}/{attachment.pod_name}: mtu {mtu}")
                plan.mtu = mtu
        return plan

    def post_add(self, attachment: Attachment, added: AddResult) -> list[Rule]:
        return []

    def del_(self, attachment: Attachment) -> None:
        return None
