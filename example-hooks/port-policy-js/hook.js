// port-policy (post-ADD), in JavaScript: which ports of a pod are reachable is chosen by one of its labels.
// A platform team names policies in the manifest; a pod labelled tier=web gets web's ports and nothing else.
//
//   [[hooks]]
//   name = "port-policy"
//   module = "port_policy.wasm"
//   stages = ["post-add"]
//   needs = ["pod-metadata"]         # labels come from the node agent; ADD waits briefly for them
//   [hooks.config]
//   label = "tier"                   # the label that picks the policy (default "tier")
//   default = "allow"                # a pod whose label names no policy: "allow" (no rules) or "deny"
//   [hooks.config.policies.web]
//   tcp = [80, 443]
//   [hooks.config.policies.db]
//   tcp = [5432]
//   from = ["10.244.0.0/16"]         # only these peers (default: anyone)
//
// Built with componentize-js (build.mjs). The contract's rules for JavaScript: exports are camelCase, records
// are objects with camelCase keys, enums are their WIT strings, and a thrown value with a `message` (an
// Error, or { message }) is the hook-error; a thrown string or number traps the hook without a message.
import log from 'log';

const KEYS = ['label', 'default', 'policies'];
const POLICY_KEYS = ['tcp', 'udp', 'from'];

// The hook-error the host shows in the ADD error and in `wasmcni hook check`.
function fail(message) {
  return { message };
}

export function validateConfig(config) {
  parseConfig(config);
}

export function preAdd(attachment, plan) {
  return plan;
}

export function postAdd(attachment, added) {
  const cfg = parseConfig(attachment.config);
  const value = labelOf(attachment, cfg.label);
  const policy = value === undefined ? undefined : cfg.policies[value];
  const pod = `${attachment.podNamespace ?? ''}/${attachment.podName ?? ''}`;
  if (policy === undefined) {
    log('debug', `port-policy: ${pod} has no policy (${cfg.label}=${value ?? 'unset'}): ${cfg.default}`);
    return cfg.default === 'deny' ? [{ direction: 'ingress', protocol: 'any', action: 'drop' }] : [];
  }
  const rules = [];
  for (const peer of policy.from.length ? policy.from : [undefined]) {
    for (const protocol of ['tcp', 'udp']) {
      for (const ports of policy[protocol]) {
        rules.push({ direction: 'ingress', protocol, ports, peer, action: 'accept' });
      }
    }
  }
  rules.push({ direction: 'ingress', protocol: 'any', action: 'drop' });
  log('info', `port-policy: ${pod} gets policy ${value}: ${rules.length - 1} open`);
  return rules;
}

export function del(attachment) {}

function labelOf(attachment, key) {
  const pair = attachment.podLabels.find(([k]) => k === key);
  return pair === undefined ? undefined : pair[1];
}

// The config table, checked; every message names the field, as `wasmcni hook check` shows it.
function parseConfig(text) {
  let raw;
  try {
    raw = JSON.parse(text || '{}');
  } catch (e) {
    throw fail(`config is not JSON: ${e.message}`);
  }
  if (!isObject(raw)) throw fail('config must be a table');
  unknownKeys(raw, KEYS, '');
  const cfg = { label: raw.label ?? 'tier', default: raw.default ?? 'allow', policies: {} };
  if (typeof cfg.label !== 'string' || cfg.label === '') throw fail('field label: must be a non-empty string');
  if (cfg.default !== 'allow' && cfg.default !== 'deny') {
    throw fail(`field default: must be "allow" or "deny", got ${JSON.stringify(cfg.default)}`);
  }
  const policies = raw.policies ?? {};
  if (!isObject(policies)) throw fail('field policies: must be a table of policies');
  for (const [name, p] of Object.entries(policies)) {
    const at = `policies.${name}`;
    if (!isObject(p)) throw fail(`field ${at}: must be a table`);
    unknownKeys(p, POLICY_KEYS, `${at}.`);
    cfg.policies[name] = {
      tcp: list(p.tcp, `${at}.tcp`).map((v, i) => portRange(v, `${at}.tcp[${i}]`)),
      udp: list(p.udp, `${at}.udp`).map((v, i) => portRange(v, `${at}.udp[${i}]`)),
      from: list(p.from, `${at}.from`).map((v, i) => cidr(v, `${at}.from[${i}]`)),
    };
  }
  return cfg;
}

function isObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unknownKeys(obj, known, prefix) {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) throw fail(`field ${prefix}${k}: unknown (expected one of ${known.join(', ')})`);
  }
}

function list(v, at) {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw fail(`field ${at}: must be a list`);
  return v;
}

// 443 or "8000-8080" -> { start, end }
function portRange(v, at) {
  const [start, end] = typeof v === 'string' && v.includes('-') ? v.split('-').map(Number) : [Number(v), Number(v)];
  const ok = (p) => Number.isInteger(p) && p >= 1 && p <= 65535;
  if ((typeof v !== 'number' && typeof v !== 'string') || !ok(start) || !ok(end) || start > end) {
    throw fail(`field ${at}: ${JSON.stringify(v)} is not a port (1-65535) or a range "start-end"`);
  }
  return { start, end };
}

// The host parses peers again; checking here refuses a typo when the hook is loaded, not at the first pod.
function cidr(v, at) {
  const [addr, len, extra] = typeof v === 'string' ? v.split('/') : [];
  const max = isIPv4(addr ?? '') ? 32 : isIPv6(addr ?? '') ? 128 : -1;
  const bits = len === undefined ? max : /^[0-9]{1,3}$/.test(len) ? Number(len) : -1;
  if (max < 0 || extra !== undefined || bits < 0 || bits > max) {
    throw fail(`field ${at}: ${JSON.stringify(v)} is not a CIDR or address`);
  }
  return v;
}

function isIPv4(s) {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

function isIPv6(s) {
  if (s.includes('.')) {
    // An IPv4 tail ("::ffff:10.0.0.1") counts as two groups.
    const i = s.lastIndexOf(':');
    if (!isIPv4(s.slice(i + 1))) return false;
    s = `${s.slice(0, i + 1)}0:0`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return false;
  const groups = halves.flatMap((h) => (h === '' ? [] : h.split(':')));
  if (!groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return false;
  return halves.length === 2 ? groups.length <= 7 : groups.length === 8;
}
