// Native unit tests: hook.c compiled for this machine with the same generated bindings, the log import
// captured. Run: bash test.sh
#include "hook.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char last_log[256];

// The import, as the generated bindings call it; natively the line is captured.
void __wasm_import_hook_log(int32_t level, uint8_t *ptr, size_t len) {
  (void)level;
  snprintf(last_log, sizeof last_log, "%.*s", (int)len, (const char *)ptr);
}

// Natively there is no component-type object to link; the bindings only reference this symbol.
void __component_type_object_force_link_hook(void) {}

static int checks, failures;
#define CHECK(cond) do { checks++; if (!(cond)) { fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

static hook_attachment_t attachment(const char *config) {
  hook_attachment_t a;
  memset(&a, 0, sizeof a);
  hook_string_dup(&a.container_id, "c");
  hook_string_dup(&a.ifname, "eth0");
  hook_string_dup(&a.config, config);
  return a;
}

static bool validate(const char *config, hook_hook_error_t *err) {
  hook_string_t c;
  hook_string_dup(&c, config);
  return exports_hook_validate_config(&c, err);
}

static bool error_is(hook_hook_error_t *err, const char *want) {
  bool same = err->message.len == strlen(want) && memcmp(err->message.ptr, want, err->message.len) == 0;
  if (!same) fprintf(stderr, "error was: %.*s\n", (int)err->message.len, (const char *)err->message.ptr);
  hook_hook_error_free(err);
  return same;
}

int main(void) {
  hook_attachment_t a = attachment("{\"ports\": [80, 443]}");
  hook_add_result_t added;
  memset(&added, 0, sizeof added);
  hook_list_rule_t rules;
  hook_hook_error_t err;
  CHECK(exports_hook_post_add(&a, &added, &rules, &err));
  CHECK(rules.len == 3);
  CHECK(rules.ptr[0].protocol == WASMCNI_HOOK_TYPES_PROTOCOL_TCP && rules.ptr[0].ports.val.start == 80);
  CHECK(rules.ptr[1].ports.is_some && rules.ptr[1].ports.val.end == 443);
  CHECK(rules.ptr[2].action == WASMCNI_HOOK_TYPES_ACTION_DROP && !rules.ptr[2].ports.is_some);
  CHECK(strcmp(last_log, "{{name}}: rules for the pod's open ports") == 0);
  hook_list_rule_free(&rules);

  CHECK(validate("{\"ports\": []}", &err));
  CHECK(!validate("{\"ports\": [80, 0]}", &err) && error_is(&err, "field ports[1]: must be a port number (1-65535)"));
  CHECK(!validate("{\"ports\": [70000]}", &err) && error_is(&err, "field ports[0]: must be a port number (1-65535)"));
  CHECK(!validate("{\"prots\": [80]}", &err) && error_is(&err, "field ports: missing (a list of port numbers)"));

  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}
