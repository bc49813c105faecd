// {{name}} (post-ADD): only the listed TCP ports reach the pod; everything else coming in is dropped.
// config (the manifest's [hooks.config], as JSON text): {"ports": [80, 443]}
//
// Ownership in wit-bindgen's C bindings: every export argument is yours (free it with its *_free helper,
// or move it into the return value); everything returned (ret, err) is freed with free() after the call,
// so it must be heap memory (malloc, hook_string_dup), never a literal. Keep to malloc and string.h:
// stdio, files or clocks pull in WASI imports (build.sh refuses them).
#include "hook.h"
#include <stdlib.h>
#include <string.h>

#define MAX_PORTS 255  // the host takes at most 256 rules from one hook

static bool fail(hook_hook_error_t *err, const char *message) {
  hook_string_dup(&err->message, message);
  return false;
}

// "field ports[<i>]: must be a port number (1-65535)", without stdio.
static bool bad_port(hook_hook_error_t *err, size_t i) {
  char msg[64] = "field ports[";
  char digits[12];
  int n = 0;
  do { digits[n++] = (char)('0' + i % 10); i /= 10; } while (i);
  size_t at = strlen(msg);
  while (n) msg[at++] = digits[--n];
  memcpy(msg + at, "]: must be a port number (1-65535)", 35);
  return fail(err, msg);
}

static const uint8_t *skip_ws(const uint8_t *p, const uint8_t *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

// Reads "ports": [..] from the config into ports[]; false with err set when it is missing or wrong.
// A small reader, not a JSON parser: it looks for the key and reads the integers of its list.
static bool parse_ports(const hook_string_t *config, uint16_t *ports, size_t *count, hook_hook_error_t *err) {
  const uint8_t *p = NULL, *end = config->ptr + config->len;
  const char *key = "\"ports\"";
  size_t klen = strlen(key);
  for (const uint8_t *k = config->ptr; p == NULL && k + klen <= end; k++) {
    if (memcmp(k, key, klen) != 0) continue;
    const uint8_t *colon = skip_ws(k + klen, end);
    if (colon < end && *colon == ':') p = colon;
  }
  if (p == NULL) return fail(err, "field ports: missing (a list of port numbers)");
  p = skip_ws(p + 1, end);
  if (p >= end || *p != '[') return fail(err, "field ports: must be a list of port numbers");
  p = skip_ws(p + 1, end);
  *count = 0;
  if (p < end && *p == ']') return true;
  for (;;) {
    if (*count == MAX_PORTS) return fail(err, "field ports: at most 255 ports");
    long v = 0;
    const uint8_t *start = p;
    while (p < end && *p >= '0' && *p <= '9' && v <= 65535) v = v * 10 + (*p++ - '0');
    if (p == start || v < 1 || v > 65535) return bad_port(err, *count);
    ports[(*count)++] = (uint16_t)v;
    p = skip_ws(p, end);
    if (p < end && *p == ',') { p = skip_ws(p + 1, end); continue; }
    if (p < end && *p == ']') return true;
    return bad_port(err, *count - 1);
  }
}

static void ingress(hook_rule_t *r, wasmcni_hook_types_protocol_t protocol, wasmcni_hook_types_action_t action) {
  memset(r, 0, sizeof *r);  // no ports, no peer, no log prefix
  r->direction = WASMCNI_HOOK_TYPES_DIRECTION_INGRESS;
  r->protocol = protocol;
  r->action = action;
}

bool exports_hook_post_add(hook_attachment_t *attachment, hook_add_result_t *added, hook_list_rule_t *ret,
                           hook_hook_error_t *err) {
  uint16_t ports[MAX_PORTS];
  size_t n = 0;
  bool ok = parse_ports(&attachment->config, ports, &n, err);
  hook_attachment_free(attachment);
  hook_add_result_free(added);
  if (!ok) return false;
  ret->len = n + 1;
  ret->ptr = malloc(ret->len * sizeof(hook_rule_t));
  if (ret->ptr == NULL) return fail(err, "out of memory");
  for (size_t i = 0; i < n; i++) {
    ingress(&ret->ptr[i], WASMCNI_HOOK_TYPES_PROTOCOL_TCP, WASMCNI_HOOK_TYPES_ACTION_ACCEPT);
    ret->ptr[i].ports.is_some = true;
    ret->ptr[i].ports.val.start = ports[i];
    ret->ptr[i].ports.val.end = ports[i];
  }
  ingress(&ret->ptr[n], WASMCNI_HOOK_TYPES_PROTOCOL_ANY, WASMCNI_HOOK_TYPES_ACTION_DROP);
  static const char line[] = "{{name}}: rules for the pod's open ports";
  hook_string_t msg = { (uint8_t *)line, sizeof line - 1 };  // borrowed by the import
  hook_log(WASMCNI_HOOK_TYPES_LEVEL_INFO, &msg);
  return true;
}

// Called when the hook is loaded (STATUS, `wasmcni hook check`): a bad config never reaches a pod.
bool exports_hook_validate_config(hook_string_t *config, hook_hook_error_t *err) {
  uint16_t ports[MAX_PORTS];
  size_t n = 0;
  bool ok = parse_ports(config, ports, &n, err);
  hook_string_free(config);
  return ok;
}

bool exports_hook_pre_add(hook_attachment_t *attachment, hook_plan_t *plan, hook_plan_t *ret, hook_hook_error_t *err) {
  (void)err;
  hook_attachment_free(attachment);
  *ret = *plan;  // move the plan into the result, unchanged: do not free it
  return true;
}

bool exports_hook_del(hook_attachment_t *attachment, hook_hook_error_t *err) {
  (void)err;
  hook_attachment_free(attachment);
  return true;
}
