/* SPDX-License-Identifier: MIT */
/*
 * The results: a table for people (meson test --benchmark), one JSON object
 * for scripts (--json).  Every case's figure is the median of its
 * repetitions; each anchor's likewise; ratio = case / anchor.
 */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static const char *unit_name(enum bench_unit u)
{
	static const char *const names[] = { "ns/op", "us/round-trip", "msgs/s", "GB/s" };

	return names[u];
}

static void fmt_fig(char *buf, size_t sz, enum bench_unit u, double v)
{
	switch (u) {
	case BENCH_NS_OP:
		if (v >= 10000)
			snprintf(buf, sz, "%.1f us", v / 1000);
		else
			snprintf(buf, sz, "%.0f ns", v);
		break;
	case BENCH_US_RT:
		snprintf(buf, sz, "%.2f us/rt", v);
		break;
	case BENCH_MSGS:
		snprintf(buf, sz, "%.2f M/s", v / 1e6);
		break;
	case BENCH_GBS:
		snprintf(buf, sz, "%.2f GB/s", v);
		break;
	}
}

static void machine(char *cpus, size_t cs, char *kernel, size_t ks, char *date, size_t ds)
{
	char line[256], model[128] = "";
	struct utsname u;
	time_t now = time(NULL);
	FILE *f = fopen("/proc/cpuinfo", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "model name : %127[^\n]", model) == 1)
			break;
	if (f)
		fclose(f);
	snprintf(cpus, cs, "%ld%s%.100s", sysconf(_SC_NPROCESSORS_ONLN), model[0] ? " x " : "",
		 model);
	if (uname(&u) == 0)
		snprintf(kernel, ks, "%.64s %.64s", u.sysname, u.release);
	else
		snprintf(kernel, ks, "unknown");
	strftime(date, ds, "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
}

void bench_print_table(const struct bench_result *results, int nresults)
{
	char cpus[128], kernel[160], date[64], a[32], b[32], tg[32];
	int missed = 0, failed = 0;

	machine(cpus, sizeof(cpus), kernel, sizeof(kernel), date, sizeof(date));
	printf("libshmx benchmarks: CPUs: %s; %s; %s; median of %d repetitions%s\n\n",
	       cpus, kernel, date, bench_reps, bench_quick ? " (--quick: figures mean nothing)" : "");
	printf("%-44s %-12s  %-34s %-12s %7s  %-7s %s\n", "case", "figure", "anchor",
	       "figure", "ratio", "target", "");
	for (int i = 0; i < nresults; i++) {
		const struct bench_result *r = &results[i];

		if (r->skipped[0] || r->error[0]) {
			printf("%-44s %s: %s\n", r->title, r->error[0] ? "FAILED" : "skipped",
			       r->error[0] ? r->error : r->skipped);
			failed += !!r->error[0];
			continue;
		}
		fmt_fig(a, sizeof(a), r->unit, r->fig[0].median);
		for (int k = 1; k < r->nfig; k++) {
			const struct bench_target *t = NULL;

			for (int j = 0; j < r->ntgt; j++)
				if (r->tgt[j].anchor == k)
					t = &r->tgt[j];
			fmt_fig(b, sizeof(b), r->unit, r->fig[k].median);
			if (t)
				snprintf(tg, sizeof(tg), "%s %.2fx", t->at_most ? "<=" : ">=", t->value);
			else
				snprintf(tg, sizeof(tg), "-");
			printf("%-44s %-12s  %-34s %-12s %6.2fx  %-8s %s\n", k == 1 ? r->title : "",
			       k == 1 ? a : "", r->fig[k].name, b,
			       r->fig[k].median > 0 ? r->fig[0].median / r->fig[k].median : 0, tg,
			       t ? (t->met ? "met" : "MISSED") : "");
			missed += t && !t->met;
		}
		if (r->note[0])
			printf("%-44s (%s)\n", "", r->note);
		if (r->busy_starts)
			printf("%-44s (%d of %d measurements began while other tasks wanted a CPU)\n",
			       "", r->busy_starts, r->nfig * bench_reps);
	}
	printf("\nratio = case / anchor (%s: lower is better for times, higher for rates); "
	       "%d target%s missed, %d case%s failed\n", "figures are medians", missed,
	       missed == 1 ? "" : "s", failed, failed == 1 ? "" : "s");
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_num(double v)
{
	printf("%.6g", v);
}

static void json_fig(const struct bench_fig *f)
{
	printf("\"figure\": ");
	json_num(f->median);
	printf(", \"samples\": [");
	for (int i = 0; i < f->n; i++) {
		printf(i ? ", " : "");
		json_num(f->samples[i]);
	}
	printf("]");
}

void bench_print_json(const struct bench_result *results, int nresults)
{
	char cpus[128], kernel[160], date[64];
	bool all = true;

	machine(cpus, sizeof(cpus), kernel, sizeof(kernel), date, sizeof(date));
	printf("{\"benchmark\": \"libshmx\", \"machine\": {\"cpus\": ");
	json_str(cpus);
	printf(", \"kernel\": ");
	json_str(kernel);
	printf(", \"date\": ");
	json_str(date);
	printf("}, \"quick\": %s, \"repetitions\": %d, \"statistic\": \"median\",\n \"cases\": [",
	       bench_quick ? "true" : "false", bench_reps);
	for (int i = 0; i < nresults; i++) {
		const struct bench_result *r = &results[i];
		bool met = !r->skipped[0] && !r->error[0];

		printf("%s\n  {\"id\": ", i ? "," : "");
		json_str(r->id);
		printf(", \"title\": ");
		json_str(r->title);
		printf(", \"unit\": ");
		json_str(unit_name(r->unit));
		printf(", \"note\": ");
		json_str(r->note);
		printf(", ");
		if (r->skipped[0] || r->error[0]) {
			printf("\"%s\": ", r->error[0] ? "error" : "skipped");
			json_str(r->error[0] ? r->error : r->skipped);
			printf(", \"met\": %s}", r->error[0] ? "false" : "null");
			all &= !r->error[0];
			continue;
		}
		json_fig(&r->fig[0]);
		printf(",\n   \"anchors\": [");
		for (int k = 1; k < r->nfig; k++) {
			printf("%s{\"name\": ", k > 1 ? ", " : "");
			json_str(r->fig[k].name);
			printf(", ");
			json_fig(&r->fig[k]);
			printf("}");
		}
		printf("],\n   \"targets\": [");
		for (int j = 0; j < r->ntgt; j++) {
			const struct bench_target *t = &r->tgt[j];

			printf("%s{\"anchor\": ", j ? ", " : "");
			json_str(r->fig[t->anchor].name);
			printf(", \"ratio\": ");
			json_num(t->ratio);
			printf(", \"op\": \"%s\", \"target\": ", t->at_most ? "<=" : ">=");
			json_num(t->value);
			printf(", \"met\": %s}", t->met ? "true" : "false");
			met &= t->met;
		}
		printf("], \"busy_starts\": %d, \"met\": %s}", r->busy_starts, met ? "true" : "false");
		all &= met;
	}
	printf("\n ], \"all_met\": %s}\n", all ? "true" : "false");
}
