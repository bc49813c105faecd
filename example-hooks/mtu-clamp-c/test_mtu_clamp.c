// Native unit tests: mtu_clamp.c compiled for the build machine with the generated bindings, the log import
// captured, the exports called with inputs built like the plugin's.
#include "hook.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char last_log[256];

// The import, as the generated bindings call it; natively we capture the line.
void __wasm_import_hook_log(int32_t level, uint8_t *ptr, size_t len) {
  (void)level;
  snprintf(last_log, sizeof last_log, "%.*s", (int)len, (const char *)ptr);
}

// Natively there is no component-type object to link; the bindings only reference this symbol.
void __component_type_object_force_link_hook(void) {}

static hook_attachment_t attachment(const char *ns, const char *config) {
  hook_attachment_t a;
  memset(&a, 0, sizeof a);
  hook_string_dup(&a.container_id, "c");
  hook_string_dup(&a.ifname, "eth0");
  if (ns) {
    a.pod_namespace.is_some = true;
    hook_string_dup(&a.pod_namespace.val, ns);
  }
  hook_string_dup(&a.config, config);
  return a;
}

static int checks, failures;
#define CHECK(cond) do { checks++; if (!(cond)) { fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

int main(void) {
  const char *cfg = "{\"namespaces\": [\"tunnelled\", \"edge\"], \"mtu\": 1400}";

  {
    hook_string_t good, bad;
    hook_hook_error_t e;
    hook_string_dup(&good, cfg);
    CHECK(exports_hook_validate_config(&good, &e));
    hook_string_dup(&bad, "{\"mtu\": 20}");
    CHECK(!exports_hook_validate_config(&bad, &e));
    CHECK(e.message.len > 0 && memcmp(e.message.ptr, "field mtu", 9) == 0);
    hook_hook_error_free(&e);
  }

  hook_attachment_t a = attachment("edge", cfg);
  hook_plan_t plan, ret;
  hook_hook_error_t err;
  memset(&plan, 0, sizeof plan);
  CHECK(exports_hook_pre_add(&a, &plan, &ret, &err));
  CHECK(ret.mtu.is_some && ret.mtu.val == 1400);
  CHECK(strcmp(last_log, "mtu-clamp: mtu 1400 for namespace edge") == 0);
  hook_plan_free(&ret);

  a = attachment("default", cfg);
  memset(&plan, 0, sizeof plan);
  CHECK(exports_hook_pre_add(&a, &plan, &ret, &err));
  CHECK(!ret.mtu.is_some);
  hook_plan_free(&ret);

  a = attachment("edge", "{\"namespaces\": [\"edge\"], \"mtu\": 5}");
  memset(&plan, 0, sizeof plan);
  CHECK(!exports_hook_pre_add(&a, &plan, &ret, &err));
  CHECK(err.message.len > 0 && memmem(err.message.ptr, err.message.len, "68-65535", 8) != NULL);
  hook_hook_error_free(&err);

  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}
