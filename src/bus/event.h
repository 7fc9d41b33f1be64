/* The one event envelope every stream carries (docs/NATS_SUBJECTS.md):
 *
 *   {"id":"<uuid v7>","type":"message.created","time":"2026-11-28T20:05:07.123Z",
 *    "source":"gateway@node1","trace_id":"...","schema_version":1,"data":{...}}
 *
 * `type` is the subject without its last token(s) of ids (the subject names
 * it exactly: message.created.{channel_id} has type message.created).
 * Events carry ids and metadata, never plaintext message content; content
 * that must travel through a stream is sealed (seal.h). */
#ifndef DAGI_EVENT_H
#define DAGI_EVENT_H

#include <jansson.h>
#include <stddef.h>

#define DAGI_EVENT_SCHEMA_VERSION 1

/* A new time-ordered id (UUID version 7), 36 chars + NUL. */
void dagi_event_id(char out[37]);

/* Builds the envelope; `data` is stolen (may be NULL = {}).  Returns the
 * compact JSON text (caller frees) and, when id_out is set, the event id. */
char *dagi_event_build(const char *type, const char *source, const char *trace_id, json_t *data,
                       char id_out[37]);

/* Parses and checks an envelope (every field present and typed); returns a
 * new reference or NULL with *why set. */
json_t *dagi_event_parse(const char *text, size_t len, const char **why);

#endif
