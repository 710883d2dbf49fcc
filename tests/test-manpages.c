/* SPDX-License-Identifier: MIT */
/*
 * Every exported function has a man page: docs/man/NAME.3.scd, or a
 * one-line redirect docs/man/links/man3/NAME.3 (".so man3/PAGE.3") to the
 * page that documents it together with others, and that page's NAME
 * section names it.  Every page is in docs/man/meson.build's list (or it
 * is never built nor installed), and builds with scdoc when scdoc is here.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define MAX_NAMES 256
#define MAX_TEXT 65536

struct names {
	int n;
	char *name[MAX_NAMES];
};

static const char *env(const char *name)
{
	const char *v = getenv(name);

	if (!v)
		fail_msg("%s is not set (run through meson test)", name);
	return v;
}

/* SHMX_SOURCE_ROOT/docs/man/rel, in a static buffer. */
static const char *man_path(const char *rel)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "%s/docs/man/%s", env("SHMX_SOURCE_ROOT"), rel);
	return buf;
}

/* The whole file in a malloc'd string, or NULL if it cannot be read. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text;
	size_t len;

	if (!f)
		return NULL;
	text = malloc(MAX_TEXT);
	assert_non_null(text);
	len = fread(text, 1, MAX_TEXT - 1, f);
	fclose(f);
	text[len] = 0;
	return text;
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The names under "global:" in the version script ($SHMX_SYMFILE). */
static void read_symbols(struct names *s)
{
	char *text = slurp(env("SHMX_SYMFILE")), *t;
	bool global = false;

	if (!text)
		fail_msg("cannot read %s: %s", env("SHMX_SYMFILE"), strerror(errno));
	while ((t = strstr(text, "/*"))) {
		char *end = strstr(t + 2, "*/");

		assert_non_null(end);
		memset(t, ' ', (size_t)(end + 2 - t));
	}
	for (t = strtok(text, " \t\n{};"); t; t = strtok(NULL, " \t\n{};")) {
		if (strcmp(t, "global:") == 0) {
			global = true;
		} else if (strcmp(t, "local:") == 0 || strncmp(t, "LIBSHMX_", 8) == 0) {
			global = false;
		} else if (global) {
			assert_true(s->n < MAX_NAMES);
			s->name[s->n++] = strdup(t);
		}
	}
	free(text);
}

static void clear(struct names *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->name[i]);
	s->n = 0;
}

/* Whether the NAME section of the page's scdoc source lists name. */
static bool page_names(const char *scd, const char *name)
{
	char *text = slurp(man_path(scd)), *sec, *end, *dash, *p;
	size_t len = strlen(name);
	bool found = false;

	if (!text)
		return false;
	sec = strstr(text, "\n# NAME\n");
	if (sec) {
		sec += strlen("\n# NAME\n");
		end = strstr(sec, "\n# ");
		if (end)
			*end = 0;
		/* the names come before " - what it is" */
		dash = strstr(sec, " - ");
		if (dash)
			*dash = 0;
		for (p = strstr(sec, name); p && !found; p = strstr(p + 1, name))
			found = (p == sec || !(isalnum((unsigned char)p[-1]) || p[-1] == '_')) &&
				!(isalnum((unsigned char)p[len]) || p[len] == '_');
	}
	free(text);
	return found;
}

/*
 * The page a redirect shows: "man3/shmx_ring.3" from ".so man3/shmx_ring.3".
 * NULL if the file is not one such line.
 */
static char *redirect_target(const char *link)
{
	char *text = slurp(man_path(link)), *target = NULL;
	char dir[16], page[256];
	int n = 0;

	if (!text)
		return NULL;
	if (sscanf(text, ".so %15[^/]/%255[^ \t\n]%n", dir, page, &n) == 2 && n > 0 &&
	    (text[n] == 0 || strcmp(text + n, "\n") == 0)) {
		target = malloc(strlen(dir) + strlen(page) + 2);
		assert_non_null(target);
		sprintf(target, "%s/%s", dir, page);
	}
	free(text);
	return target;
}

static void every_symbol_has_a_page(void **state)
{
	struct names syms = { 0 };
	char missing[4096] = "";

	(void)state;
	read_symbols(&syms);
	assert_true(syms.n > 0);
	for (int i = 0; i < syms.n; i++) {
		const char *name = syms.name[i];
		char scd[512], link[512], *target;

		snprintf(scd, sizeof(scd), "%s.3.scd", name);
		snprintf(link, sizeof(link), "links/man3/%s.3", name);
		if (exists(man_path(scd))) {
			if (!page_names(scd, name))
				fail_msg("docs/man/%s: its NAME section does not name %s", scd, name);
			continue;
		}
		if (!exists(man_path(link))) {
			snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing),
				 " %s", name);
			continue;
		}
		target = redirect_target(link);
		if (!target)
			fail_msg("docs/man/%s is not one line \".so manN/PAGE.N\"", link);
		/* man3/shmx_ring.3 -> shmx_ring.3.scd */
		snprintf(scd, sizeof(scd), "%s.scd", strchr(target, '/') + 1);
		if (strncmp(target, "man3/", 5) != 0 || !exists(man_path(scd)))
			fail_msg("docs/man/%s shows %s, which has no docs/man/%s", link, target, scd);
		if (!page_names(scd, name))
			fail_msg("docs/man/%s: its NAME section does not name %s", scd, name);
		free(target);
	}
	if (missing[0])
		fail_msg("no man page (docs/man/NAME.3.scd or docs/man/links/man3/NAME.3) for:%s",
			 missing);
	clear(&syms);
}

/* Calls f on each regular file in docs/man/rel whose name ends in suffix. */
static void each_file(const char *rel, const char *suffix, void (*f)(const char *dir, const char *file))
{
	DIR *d = opendir(man_path(rel));
	struct dirent *e;

	if (!d) {
		if (errno == ENOENT)
			return;
		fail_msg("docs/man/%s: %s", rel, strerror(errno));
	}
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name), slen = strlen(suffix);

		if (e->d_name[0] == '.' || len <= slen || strcmp(e->d_name + len - slen, suffix))
			continue;
		f(rel, e->d_name);
	}
	closedir(d);
}

static void check_link(const char *dir, const char *file)
{
	char rel[512], scd[512], want[16];
	char *target;

	snprintf(rel, sizeof(rel), "%s/%s", dir, file);
	target = redirect_target(rel);
	if (!target)
		fail_msg("docs/man/%s is not one line \".so manN/PAGE.N\"", rel);
	/* links/man3/x.3 shows man3/PAGE.3 */
	snprintf(want, sizeof(want), "%s/", strrchr(dir, '/') + 1);
	if (strncmp(target, want, strlen(want)) != 0 ||
	    strcmp(strrchr(target, '.'), strrchr(file, '.')) != 0)
		fail_msg("docs/man/%s shows %s, a page of another section", rel, target);
	snprintf(scd, sizeof(scd), "%s.scd", strchr(target, '/') + 1);
	if (!exists(man_path(scd)))
		fail_msg("docs/man/%s shows %s, which has no docs/man/%s", rel, target, scd);
	free(target);
}

static void every_redirect_shows_a_page(void **state)
{
	(void)state;
	each_file("links/man1", ".1", check_link);
	each_file("links/man3", ".3", check_link);
	each_file("links/man5", ".5", check_link);
	each_file("links/man7", ".7", check_link);
	each_file("links/man8", ".8", check_link);
}

static char *meson_text;

static void check_listed(const char *dir, const char *file)
{
	char quoted[512];

	(void)dir;
	snprintf(quoted, sizeof(quoted), "'%s'", file);
	if (!strstr(meson_text, quoted))
		fail_msg("docs/man/%s is not in man_pages of docs/man/meson.build", file);
}

static void every_page_is_built(void **state)
{
	(void)state;
	meson_text = slurp(man_path("meson.build"));
	if (!meson_text)
		fail_msg("cannot read docs/man/meson.build");
	each_file(".", ".scd", check_listed);
	free(meson_text);
	meson_text = NULL;
}

/* The first line is "NAME(SECTION) ...", as the file is NAME.SECTION.scd. */
static void check_title(const char *dir, const char *file)
{
	char *text = slurp(man_path(file)), want[512];
	size_t len = strlen(file) - strlen(".scd");
	char *dot;

	(void)dir;
	assert_non_null(text);
	snprintf(want, sizeof(want), "%.*s", (int)len, file);
	dot = strrchr(want, '.');
	assert_non_null(dot);
	*dot = '(';
	strcat(want, ")");
	if (strncmp(text, want, strlen(want)) != 0)
		fail_msg("docs/man/%s does not begin with %s", file, want);
	free(text);
}

static void every_page_has_its_title(void **state)
{
	(void)state;
	each_file(".", ".scd", check_title);
}

static char scdoc[4096];

static bool find_scdoc(void)
{
	const char *path = getenv("PATH");
	char *dirs, *d, *save = NULL;
	bool found = false;

	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	dirs = strdup(path);
	assert_non_null(dirs);
	for (d = strtok_r(dirs, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		snprintf(scdoc, sizeof(scdoc), "%s/scdoc", *d ? d : ".");
		found = access(scdoc, X_OK) == 0;
	}
	free(dirs);
	return found;
}

static void check_scdoc(const char *dir, const char *file)
{
	char cmd[16384];
	int status;

	(void)dir;
	snprintf(cmd, sizeof(cmd), "'%s' < '%s' > /dev/null", scdoc, man_path(file));
	status = system(cmd);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("scdoc fails on docs/man/%s (status %d)", file, status);
}

static void every_page_builds(void **state)
{
	(void)state;
	if (!find_scdoc()) {
		print_message("# skip: no scdoc in PATH\n");
		skip();
	}
	each_file(".", ".scd", check_scdoc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_symbol_has_a_page),
		cmocka_unit_test(every_redirect_shows_a_page),
		cmocka_unit_test(every_page_is_built),
		cmocka_unit_test(every_page_has_its_title),
		cmocka_unit_test(every_page_builds),
	};

	return tc_run_tests("manpages", tests);
}
