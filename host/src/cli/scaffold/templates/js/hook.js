// {{name}} (post-ADD): only the listed TCP ports reach the pod; everything else coming in is dropped.
//
//   [hooks.config]
//   ports = [80, 443]
//
// Built into a component by build.mjs (componentize-js). For JavaScript the contract reads: exports are
// camelCase (preAdd, postAdd, del, validateConfig), records are objects with camelCase keys, enums are
// their WIT strings ('ingress', 'tcp', 'drop'), option<T> is the value or undefined, and what a stage
// throws becomes its hook-error by its `message` (an Error, or { message }); a thrown string traps.
import log from 'log';

function fail(message) {
  return { message };
}

// The config's ports, checked: the messages name the field, as `wasmcni hook check` shows them.
function parse(text) {
  let config;
  try {
    config = JSON.parse(text || '{}');
  } catch (e) {
    throw fail(`config is not JSON: ${e.message}`);
  }
  for (const key of Object.keys(config)) {
    if (key !== 'ports') throw fail(`field ${key}: unknown (expected ports)`);
  }
  if (!Array.isArray(config.ports)) throw fail('field ports: missing (a list of port numbers)');
  config.ports.forEach((p, i) => {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw fail(`field ports[${i}]: must be a port number (1-65535)`);
  });
  return config.ports;
}

// Called when the hook is loaded (STATUS, `wasmcni hook check`): a bad config never reaches a pod.
export function validateConfig(config) {
  parse(config);
}

export function postAdd(attachment, added) {
  const ports = parse(attachment.config);
  const rules = ports.map((p) => ({ direction: 'ingress', protocol: 'tcp', ports: { start: p, end: p }, action: 'accept' }));
  rules.push({ direction: 'ingress', protocol: 'any', action: 'drop' });
  log('info', `{{name}}: ${attachment.podNamespace}/${attachment.podName}: ${ports.length} port(s) open`);
  return rules;
}

export function preAdd(attachment, plan) {
  return plan;
}

export function del(attachment) {}
