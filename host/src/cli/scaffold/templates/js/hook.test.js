// Native tests of hook.js under Node's test runner: the exports called as the component's bindings call
// them, the log import recorded (test/register.mjs maps it). Run: bash test.sh
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { lines } from './log.mjs';
import { postAdd, validateConfig } from '../hook.js';

function attachment(config) {
  return {
    containerId: 'c1', ifname: 'eth0', netns: '/var/run/netns/t', network: 'podnet',
    podNamespace: 'web', podName: 'test', podUid: undefined, args: [], runtimeConfig: '{}',
    config: JSON.stringify(config), podLabels: [], podAnnotations: [], serviceAccount: undefined,
  };
}

const added = { interfaces: [], ips: [], routes: [], dns: { nameservers: [], search: [], options: [] } };

test('only the listed ports are accepted', () => {
  assert.deepEqual(postAdd(attachment({ ports: [80, 443] }), added), [
    { direction: 'ingress', protocol: 'tcp', ports: { start: 80, end: 80 }, action: 'accept' },
    { direction: 'ingress', protocol: 'tcp', ports: { start: 443, end: 443 }, action: 'accept' },
    { direction: 'ingress', protocol: 'any', action: 'drop' },
  ]);
  assert.deepEqual(lines.at(-1), ['info', '{{name}}: web/test: 2 port(s) open']);
});

test('a bad config is refused naming the field', () => {
  validateConfig(JSON.stringify({ ports: [80] }));
  for (const [config, message] of [
    [{ ports: [80, 0] }, 'field ports[1]: must be a port number (1-65535)'],
    [{ ports: ['80'] }, 'field ports[0]: must be a port number (1-65535)'],
    [{ prots: [80] }, 'field prots: unknown (expected ports)'],
  ]) {
    assert.throws(() => validateConfig(JSON.stringify(config)), { message });
  }
});
