/* SPDX-License-Identifier: MIT */
/*
 * The shared library exports exactly the public API: every function of the
 * contract, nothing else, each under the version node of src/libshmx.sym.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static const char *const api[] = {
	"shmx_get", "shmx_at", "shmx_dt", "shmx_ctl", "shmx_list", "shmx_info", "shmx_fd",
};

static const char *const ring_api[] = {
	"shmx_ring_create", "shmx_ring_open", "shmx_ring_send", "shmx_ring_recv",
	"shmx_ring_reserve", "shmx_ring_commit", "shmx_ring_peek", "shmx_ring_release",
	"shmx_ring_close",
};

#define MAX_SYMS 256

struct symset {
	int n;
	char *name[MAX_SYMS];
	char *version[MAX_SYMS];        /* node, or NULL if nm did not say */
};

static const char *env(const char *name)
{
	const char *v = getenv(name);

	if (!v)
		fail_msg("%s is not set (run through meson test)", name);
	return v;
}

static void add(struct symset *s, const char *name, const char *version)
{
	assert_true(s->n < MAX_SYMS);
	s->name[s->n] = strdup(name);
	s->version[s->n] = version ? strdup(version) : NULL;
	s->n++;
}

static int find(const struct symset *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->name[i], name) == 0)
			return i;
	return -1;
}

static void clear(struct symset *s)
{
	for (int i = 0; i < s->n; i++) {
		free(s->name[i]);
		free(s->version[i]);
	}
	s->n = 0;
}

/* The global names of the version script (with their node), and its newest node. */
static void read_map(struct symset *s, char *newest, size_t n)
{
	char text[65536], node[256] = "";
	bool global = false;
	FILE *f = fopen(env("SHMX_SYMFILE"), "r");
	size_t len;
	char *t;

	assert_non_null(f);
	len = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[len] = 0;
	/* comments out */
	while ((t = strstr(text, "/*"))) {
		char *end = strstr(t + 2, "*/");

		assert_non_null(end);
		memset(t, ' ', (size_t)(end + 2 - t));
	}
	newest[0] = 0;
	for (t = strtok(text, " \t\n{};"); t; t = strtok(NULL, " \t\n{};")) {
		if (strcmp(t, "global:") == 0) {
			global = true;
		} else if (strcmp(t, "local:") == 0) {
			global = false;
		} else if (strncmp(t, "LIBSHMX_", 8) == 0) {
			/* a node's name, or the one it is chained to after its "}" */
			if (!node[0] || !global) {
				snprintf(node, sizeof(node), "%s", t);
				/* one node per release, the newest declared last */
				snprintf(newest, n, "%s", t);
			}
			global = false;
		} else if (global) {
			add(s, t, node);
		}
	}
}

/* The dynamic symbols the library defines, from nm -D --defined-only. */
static void read_exports(struct symset *s)
{
	char cmd[4200], line[512];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s' 2>/dev/null", env("SHMX_LIBSHMX"));
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		char addr[64], type[8], name[400], *at, *version = NULL;

		if (sscanf(line, "%63s %7s %399s", addr, type, name) != 3)
			continue;
		/* the version nodes themselves are absolute symbols */
		if (strcmp(type, "A") == 0)
			continue;
		at = strchr(name, '@');
		if (at) {
			*at = 0;
			version = at + 1 + (at[1] == '@');
		}
		add(s, name, version);
	}
	if (pclose(p) != 0 && s->n == 0)
		fail_msg("nm failed on %s", env("SHMX_LIBSHMX"));
}

static void every_api_function_is_exported(void **state)
{
	void *lib;

	(void)state;
	lib = dlopen(env("SHMX_LIBSHMX"), RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		fail_msg("dlopen: %s", dlerror());
	for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++)
		if (!dlsym(lib, api[i]))
			fail_msg("%s is not exported", api[i]);
	dlclose(lib);
}

static void ring_api_is_exported(void **state)
{
	char header[4096];
	void *lib;

	(void)state;
	snprintf(header, sizeof(header), "%s/include/shmx/ring.h", env("SHMX_SOURCE_ROOT"));
	if (access(header, F_OK) != 0) {
		print_message("# skip: no include/shmx/ring.h in this tree yet\n");
		skip();
	}
	lib = dlopen(env("SHMX_LIBSHMX"), RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		fail_msg("dlopen: %s", dlerror());
	for (size_t i = 0; i < sizeof(ring_api) / sizeof(ring_api[0]); i++)
		if (!dlsym(lib, ring_api[i]))
			fail_msg("%s is not exported", ring_api[i]);
	dlclose(lib);
}

static void exports_match_the_map(void **state)
{
	struct symset map = { 0 }, exp = { 0 };
	char newest[256];

	(void)state;
	read_map(&map, newest, sizeof(newest));
	read_exports(&exp);
	assert_true(map.n > 0);
	assert_true(exp.n > 0);
	for (int i = 0; i < exp.n; i++) {
		int m = find(&map, exp.name[i]);

		if (m < 0)
			fail_msg("%s is exported but not in libshmx.sym", exp.name[i]);
		if (exp.version[i] && strcmp(exp.version[i], map.version[m]) != 0)
			fail_msg("%s is exported as %s, the map says %s", exp.name[i],
				 exp.version[i], map.version[m]);
	}
	for (int i = 0; i < map.n; i++)
		if (find(&exp, map.name[i]) < 0)
			fail_msg("%s is in libshmx.sym but not exported", map.name[i]);
	/* the API functions are all in the map */
	for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++)
		if (find(&map, api[i]) < 0)
			fail_msg("%s is missing from libshmx.sym", api[i]);
	clear(&map);
	clear(&exp);
}

static void only_shmx_names_are_exported(void **state)
{
	struct symset exp = { 0 };

	(void)state;
	read_exports(&exp);
	for (int i = 0; i < exp.n; i++) {
		if (strncmp(exp.name[i], "shmx_", 5) != 0)
			fail_msg("%s is exported", exp.name[i]);
		/* internal helpers share the prefix: shmx_reg_*, shmx_req_*, shmx_log... */
		if (strncmp(exp.name[i], "shmx_reg_", 9) == 0 ||
		    strncmp(exp.name[i], "shmx_req", 8) == 0 ||
		    strncmp(exp.name[i], "shmx_reply", 10) == 0 ||
		    strncmp(exp.name[i], "shmx_sock", 9) == 0 ||
		    strncmp(exp.name[i], "shmx_log", 8) == 0 ||
		    strncmp(exp.name[i], "shmx_cred", 9) == 0)
			fail_msg("internal %s is exported", exp.name[i]);
	}
	clear(&exp);
}

static void newest_node_is_this_release(void **state)
{
	struct symset map = { 0 };
	char newest[256], want[64];
	int major = 0, minor = 0;

	(void)state;
	read_map(&map, newest, sizeof(newest));
	assert_int_equal(sscanf(env("SHMX_VERSION"), "%d.%d", &major, &minor), 2);
	snprintf(want, sizeof(want), "LIBSHMX_%d.%d", major, minor);
	assert_string_equal(newest, want);
	clear(&map);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_api_function_is_exported),
		cmocka_unit_test(ring_api_is_exported),
		cmocka_unit_test(exports_match_the_map),
		cmocka_unit_test(only_shmx_names_are_exported),
		cmocka_unit_test(newest_node_is_this_release),
	};

	return tc_run_tests("api", tests);
}
