// mtu-clamp (pre-ADD), in C: pods in the listed namespaces get a smaller MTU.
// config (JSON text): {"namespaces":["prod", ...], "mtu": 1400}
// pre-add: if attachment.pod-namespace is listed in "namespaces", set plan.mtu = "mtu".
// post-add: no rules. del: ok.
//
// Ownership (wit-bindgen 0.61 C bindings):
//  * Every export argument (attachment, plan, added) is OWNED by this code: free it with the
//    generated *_free helper, or move it into the return value (never both).
//  * Everything returned (ret, err) is freed by the generated cabi_post_* with free(), so every
//    returned non-empty string/list must be heap memory (malloc / hook_string_dup), never a literal.
//  * Import arguments (hook_log's message) are borrowed: the caller keeps ownership.
#include "hook.h"
#include <stdlib.h>
#include <string.h>

typedef struct { const uint8_t *p, *end; } cur_t;

static void skip_ws(cur_t *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

// Find `"key"` followed by optional whitespace and ':'; leave the cursor after the ':'.
static bool find_key(const hook_string_t *json, const char *key, cur_t *out) {
  size_t klen = strlen(key);
  const uint8_t *s = json->ptr, *end = json->ptr + json->len;
  for (const uint8_t *p = s; p + klen + 2 <= end; p++) {
    if (p[0] != '"' || memcmp(p + 1, key, klen) != 0 || p[1 + klen] != '"') continue;
    cur_t c = { p + klen + 2, end };
    skip_ws(&c);
    if (c.p < c.end && *c.p == ':') { c.p++; skip_ws(&c); *out = c; return true; }
  }
  return false;
}

// Is `ns` one of the strings in the "namespaces" array?
static bool ns_listed(const hook_string_t *config, const hook_string_t *ns) {
  cur_t c;
  if (!find_key(config, "namespaces", &c) || c.p >= c.end || *c.p != '[') return false;
  c.p++;
  for (;;) {
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '"') return false;           // ']' or malformed: not found
    const uint8_t *start = ++c.p;
    while (c.p < c.end && *c.p != '"') c.p += (*c.p == '\\') ? 2 : 1;
    if (c.p >= c.end) return false;
    if ((size_t)(c.p - start) == ns->len && memcmp(start, ns->ptr, ns->len) == 0) return true;
    c.p++;
    skip_ws(&c);
    if (c.p < c.end && *c.p == ',') { c.p++; continue; }
    return false;
  }
}

// The integer after "mtu": -1 when absent or malformed.
static long config_mtu(const hook_string_t *config) {
  cur_t c;
  if (!find_key(config, "mtu", &c) || c.p >= c.end || *c.p < '0' || *c.p > '9') return -1;
  long v = 0;
  while (c.p < c.end && *c.p >= '0' && *c.p <= '9' && v < 1000000) v = v * 10 + (*c.p++ - '0');
  return v;
}

// Tiny string builder for the log line (stack buffer, no stdio).
typedef struct { char buf[256]; size_t n; } sb_t;
static void sb_bytes(sb_t *b, const void *p, size_t len) {
  if (len > sizeof b->buf - b->n) len = sizeof b->buf - b->n;
  memcpy(b->buf + b->n, p, len); b->n += len;
}
static void sb_str(sb_t *b, const char *s) { sb_bytes(b, s, strlen(s)); }
static void sb_u32(sb_t *b, uint32_t v) {
  char t[10]; int i = 10;
  do { t[--i] = (char)('0' + v % 10); v /= 10; } while (v);
  sb_bytes(b, t + i, 10 - i);
}
static void log_line(hook_level_t level, sb_t *b) {
  hook_string_t msg = { (uint8_t *)b->buf, b->n };   // borrowed by the import
  hook_log(level, &msg);
}

static bool fail(hook_hook_error_t *err, const char *message) {
  hook_string_dup(&err->message, message);          // heap copy: cabi_post frees it
  return false;
}

bool exports_hook_pre_add(hook_attachment_t *attachment, hook_plan_t *plan,
                          hook_plan_t *ret, hook_hook_error_t *err) {
  sb_t b = { .n = 0 };
  sb_str(&b, "mtu-clamp: ");
  hook_level_t level = WASMCNI_HOOK_TYPES_LEVEL_DEBUG;
  if (attachment->pod_namespace.is_some &&
      ns_listed(&attachment->config, &attachment->pod_namespace.val)) {
    long mtu = config_mtu(&attachment->config);
    if (mtu < 68 || mtu > 65535) {
      hook_attachment_free(attachment);
      hook_plan_free(plan);
      return fail(err, "mtu-clamp: config.mtu missing or outside 68-65535");
    }
    plan->mtu.is_some = true;
    plan->mtu.val = (uint32_t)mtu;
    sb_str(&b, "mtu ");
    sb_u32(&b, (uint32_t)mtu);
    sb_str(&b, " for namespace ");
    sb_bytes(&b, attachment->pod_namespace.val.ptr, attachment->pod_namespace.val.len);
    level = WASMCNI_HOOK_TYPES_LEVEL_INFO;
  } else {
    sb_str(&b, "namespace not listed, plan unchanged");
  }
  log_line(level, &b);
  *ret = *plan;                      // move the (owned) plan into the result: do NOT free it
  hook_attachment_free(attachment);  // the attachment is ours too: free it
  return true;
}

bool exports_hook_post_add(hook_attachment_t *attachment, hook_add_result_t *added,
                           hook_list_rule_t *ret, hook_hook_error_t *err) {
  (void)err;
  hook_attachment_free(attachment);
  hook_add_result_free(added);
  ret->ptr = NULL;
  ret->len = 0;
  return true;
}

bool exports_hook_del(hook_attachment_t *attachment, hook_hook_error_t *err) {
  (void)err;
  hook_attachment_free(attachment);
  return true;
}

// Called when the hook is loaded (STATUS, `wasmcni hook check`): a bad MTU is refused before any pod meets it.
bool exports_hook_validate_config(hook_string_t *config, hook_hook_error_t *err) {
  long mtu = config_mtu(config);
  hook_string_free(config);
  if (mtu < 68 || mtu > 65535) return fail(err, "field mtu: missing or outside 68-65535");
  return true;
}
