// Native tests of hook.js: the exports called as the component's bindings call them (camelCase records,
// enums as strings), the log import recorded. Run: bash test.sh (or npm test)
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { lines } from './log.mjs';
import { del, postAdd, preAdd, validateConfig } from '../hook.js';

function attachment(labels = {}, config = {}) {
  return {
    containerId: 'c1', ifname: 'eth0', netns: '/var/run/netns/t', network: 'podnet',
    podNamespace: 'shop', podName: 'web-0', podUid: undefined, args: [], runtimeConfig: '{}',
    config: JSON.stringify(config), podLabels: Object.entries(labels), podAnnotations: [], serviceAccount: undefined,
  };
}

const added = { interfaces: [], ips: [], routes: [], dns: { nameservers: [], search: [], options: [] } };
const config = { policies: { web: { tcp: [80, '8000-8080'] }, db: { tcp: [5432], from: ['10.244.0.0/16'] } } };

test('a labelled pod gets its policy: its ports accepted, then everything else dropped', () => {
  const rules = postAdd(attachment({ tier: 'web' }, config), added);
  assert.deepEqual(rules, [
    { direction: 'ingress', protocol: 'tcp', ports: { start: 80, end: 80 }, peer: undefined, action: 'accept' },
    { direction: 'ingress', protocol: 'tcp', ports: { start: 8000, end: 8080 }, peer: undefined, action: 'accept' },
    { direction: 'ingress', protocol: 'any', action: 'drop' },
  ]);
  assert.deepEqual(lines.at(-1), ['info', 'port-policy: shop/web-0 gets policy web: 2 open']);
});

test('peers restrict a policy to the listed sources', () => {
  const rules = postAdd(attachment({ tier: 'db' }, config), added);
  assert.equal(rules.length, 2);
  assert.equal(rules[0].peer, '10.244.0.0/16');
});

test('a pod without a policy gets the default: nothing, or a drop with default = deny', () => {
  assert.deepEqual(postAdd(attachment({}, config), added), []);
  assert.deepEqual(postAdd(attachment({ tier: 'batch' }, { ...config, default: 'deny' }), added), [
    { direction: 'ingress', protocol: 'any', action: 'drop' },
  ]);
  assert.deepEqual(postAdd(attachment({ role: 'web' }, { ...config, label: 'role' }), added).length, 3);
});

test('pre-add and del change nothing', () => {
  const plan = { ips: [], routes: [], mtu: 1400, mac: undefined, dns: added.dns };
  assert.equal(preAdd(attachment(), plan), plan);
  assert.equal(del(attachment()), undefined);
});

// The component turns what is thrown into the hook-error by its `message`; a string would trap it.
function refused(cfg, message) {
  assert.throws(() => validateConfig(typeof cfg === 'string' ? cfg : JSON.stringify(cfg)), (e) => {
    assert.equal(typeof e.message, 'string', 'throw { message } or an Error: anything else traps the hook');
    assert.match(e.message, message);
    return true;
  });
}

test('validate-config accepts a good config and names the field of a bad one', () => {
  validateConfig(JSON.stringify(config));
  validateConfig('{}');
  refused({ policies: { web: { tcp: [0] } } }, /^field policies\.web\.tcp\[0\]: 0 is not a port/);
  refused({ policies: { web: { udp: ['90-80'] } } }, /^field policies\.web\.udp\[0\]/);
  refused({ policies: { db: { from: ['10.0.0.0/33'] } } }, /^field policies\.db\.from\[0\]/);
  refused({ policies: { db: { from: ['fd00::1::2'] } } }, /^field policies\.db\.from\[0\]/);
  refused({ policies: { db: { form: [] } } }, /^field policies\.db\.form: unknown/);
  refused({ default: 'maybe' }, /^field default/);
  refused({ label: '' }, /^field label/);
  refused('{"policies": ', /^config is not JSON/);
});

test('a bad config at post-add is a hook error too (the hook may run without validate-config)', () => {
  assert.throws(() => postAdd(attachment({ tier: 'web' }, { policies: { web: { tcp: ['http'] } } }), added),
    { message: 'field policies.web.tcp[0]: "http" is not a port (1-65535) or a range "start-end"' });
});

test('addresses and CIDRs of both families pass', () => {
  for (const from of ['10.0.0.1', '0.0.0.0/0', '::/0', 'fd00::/64', '::ffff:10.0.0.1', '2001:db8:0:0:0:0:0:1/128']) {
    validateConfig(JSON.stringify({ policies: { p: { from: [from] } } }));
  }
});
