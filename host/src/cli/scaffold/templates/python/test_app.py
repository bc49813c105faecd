"""Native unit tests: the hook's methods called with the generated types, the log import captured.
Run: bash test.sh"""
import json
import unittest

import app
from componentize_py_types import Err
from wit_world.imports.types import Action, AddResult, Attachment, Dns, Protocol


def attachment(config):
    return Attachment(container_id="c", ifname="eth0", netns="/var/run/netns/t", network="podnet",
                      pod_namespace="web", pod_name="test", pod_uid=None, args=[], runtime_config="{}",
                      config=json.dumps(config), pod_labels=[], pod_annotations=[], service_account=None)


ADDED = AddResult(interfaces=[], ips=[], routes=[], dns=Dns(nameservers=[], domain=None, search=[], options=[]))


class Ports(unittest.TestCase):
    def setUp(self):
        self.logs = []
        app.log = lambda level, message: self.logs.append((level, message))
        self.hook = app.WitWorld()

    def test_only_the_listed_ports_are_accepted(self):
        rules = self.hook.post_add(attachment({"ports": [80, 443]}), ADDED)
        self.assertEqual([(r.protocol, r.ports and r.ports.start, r.action) for r in rules],
                         [(Protocol.TCP, 80, Action.ACCEPT), (Protocol.TCP, 443, Action.ACCEPT),
                          (Protocol.ANY, None, Action.DROP)])
        self.assertEqual(self.logs[0][1], "{{name}}: web/test: 2 port(s) open")

    def test_a_bad_config_is_refused_naming_the_field(self):
        self.hook.validate_config(json.dumps({"ports": [80]}))
        for config, message in [({"ports": [80, 0]}, "field ports[1]: must be a port number (1-65535)"),
                                ({"ports": ["80"]}, "field ports[0]: must be a port number (1-65535)"),
                                ({"prots": [80]}, "field prots: unknown (expected ports)")]:
            with self.assertRaises(Err) as e:
                self.hook.validate_config(json.dumps(config))
            self.assertEqual(e.exception.value.message, message)


if __name__ == "__main__":
    unittest.main()
