"""Native unit tests: the hook's methods called directly with the generated Python types, log captured."""
import json
import unittest

import app
from componentize_py_types import Err
from wit_world.imports.types import Attachment, Dns, Plan


def attachment(namespace="default", config=None):
    return Attachment(container_id="c", ifname="eth0", netns="/var/run/netns/t", network="podnet",
                      pod_namespace=namespace, pod_name="web", pod_uid=None, args=[],
                      runtime_config="{}", config=json.dumps(config or {}),
                      pod_labels=[], pod_annotations=[], service_account=None)


def plan(mtu=None):
    return Plan(ips=[], routes=[], mtu=mtu, mac=None, dns=Dns(nameservers=[], domain=None, search=[], options=[]))


class MtuClamp(unittest.TestCase):
    def setUp(self):
        self.logs = []
        app.log = lambda level, message: self.logs.append((level, message))
        self.hook = app.WitWorld()
        self.cfg = {"namespaces": ["tunnelled"], "mtu": 1400}

    def test_listed_namespace_is_clamped_and_logged(self):
        out = self.hook.pre_add(attachment("tunnelled", self.cfg), plan(1500))
        self.assertEqual(out.mtu, 1400)
        self.assertEqual(self.logs[0][1], "mtu-clamp: tunnelled/web: mtu 1400")

    def test_smaller_mtu_is_kept_and_others_untouched(self):
        self.assertEqual(self.hook.pre_add(attachment("tunnelled", self.cfg), plan(1300)).mtu, 1300)
        self.assertIsNone(self.hook.pre_add(attachment("default", self.cfg), plan()).mtu)

    def test_bad_config_is_a_hook_error(self):
        with self.assertRaises(Err) as e:
            self.hook.pre_add(attachment("tunnelled", {"mtu": 5}), plan())
        self.assertIn("68-65535", e.exception.value.message)

    def test_validate_config_refuses_a_bad_mtu_before_any_pod(self):
        self.hook.validate_config(json.dumps(self.cfg))
        with self.assertRaises(Err) as e:
            self.hook.validate_config(json.dumps({"mtu": 5}))
        self.assertIn("field mtu", e.exception.value.message)


if __name__ == "__main__":
    unittest.main()
