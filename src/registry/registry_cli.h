/* `dagi config push|get|history|diff|rollback|delete|list` (registry_cli.c):
 * the config registry through the admin API of a running node. */
#ifndef DAGI_REGISTRY_CLI_H
#define DAGI_REGISTRY_CLI_H

#include <stdbool.h>
#include <stdio.h>

/* True for the verbs below (what `dagi config` hands over). */
bool dagi_config_cli_handles(const char *verb);
/* argv[0] is "config", argv[1] the verb.  Returns the exit code: 0 done,
 * 1 refused (a 422 prints its errors as "document:line: message", one per
 * line) or the node answered an error or none runs, 2 usage. */
int dagi_config_cli(int argc, char **argv);
/* The verbs' usage lines, for `dagi config --help`. */
void dagi_config_cli_usage(FILE *out);

#endif
