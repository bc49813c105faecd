"""{{name}} (post-ADD): only the listed TCP ports reach the pod; everything else coming in is dropped.

    [hooks.config]
    ports = [80, 443]

Built into a component with componentize-py (build.sh); the bindings come from wit/hook.wit. The export
class must be named WitWorld; `del` is `del_`; records are dataclasses, enums upper-case, option<T> is
Optional[T]. Raise Err(HookError(...)) for an error: any other exception traps the hook.
"""
import json

import wit_world
from componentize_py_types import Err
from wit_world import log
from wit_world.imports.types import (Action, AddResult, Attachment, Direction, HookError, Level, Plan,
                                     PortRange, Protocol, Rule)


def fail(message: str) -> Err:
    return Err(HookError(message=message))


def parse(config_text: str) -> list[int]:
    """The config's ports, checked: the messages name the field, as `wasmcni hook check` shows them."""
    try:
        config = json.loads(config_text or "{}")
    except ValueError as e:
        raise fail(f"config is not JSON: {e}")
    unknown = sorted(set(config) - {"ports"})
    if unknown:
        raise fail(f"field {unknown[0]}: unknown (expected ports)")
    ports = config.get("ports")
    if not isinstance(ports, list):
        raise fail("field ports: missing (a list of port numbers)")
    for i, p in enumerate(ports):
        if type(p) is not int or not 1 <= p <= 65535:
            raise fail(f"field ports[{i}]: must be a port number (1-65535)")
    return ports


class WitWorld(wit_world.WitWorld):
    def validate_config(self, config: str) -> None:
        parse(config)

    def post_add(self, attachment: Attachment, added: AddResult) -> list[Rule]:
        ports = parse(attachment.config)
        rules = [Rule(direction=Direction.INGRESS, protocol=Protocol.TCP, ports=PortRange(start=p, end=p),
                      peer=None, action=Action.ACCEPT, log_prefix=None) for p in ports]
        rules.append(Rule(direction=Direction.INGRESS, protocol=Protocol.ANY, ports=None, peer=None,
                          action=Action.DROP, log_prefix=None))
        log(Level.INFO, f"{{name}}: {attachment.pod_namespace}/{attachment.pod_name}: {len(ports)} port(s) open")
        return rules

    def pre_add(self, attachment: Attachment, plan: Plan) -> Plan:
        return plan

    def del_(self, attachment: Attachment) -> None:
        return None
