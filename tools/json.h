/* SPDX-License-Identifier: MIT */
/*
 * A tiny JSON writer for shmx --json: one document, indented, numbers as
 * JSON numbers, strings escaped (invalid UTF-8 becomes U+FFFD, so the
 * document is always valid).  Inside an object every value has a name;
 * inside an array, and at the top, name is NULL.
 */
#ifndef SHMX_TOOL_JSON_H
#define SHMX_TOOL_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16

struct json {
	FILE *f;
	int depth;
	bool has_items[JSON_MAX_DEPTH];         /* a comma before the next one */
};

void json_init(struct json *j, FILE *f);
void json_object_begin(struct json *j, const char *name);
void json_object_end(struct json *j);
void json_array_begin(struct json *j, const char *name);
void json_array_end(struct json *j);
void json_string(struct json *j, const char *name, const char *s);
void json_int(struct json *j, const char *name, int64_t v);
void json_uint(struct json *j, const char *name, uint64_t v);
void json_bool(struct json *j, const char *name, bool v);
void json_null(struct json *j, const char *name);
/* Ends the document (a newline after the top value). */
void json_finish(struct json *j);

#endif
