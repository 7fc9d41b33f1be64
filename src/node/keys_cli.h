/* `dagi keys ...` (keys_cli.c). */
#ifndef DAGI_NODE_KEYS_CLI_H
#define DAGI_NODE_KEYS_CLI_H

/* argv[0] is "keys".  Returns the exit code: 0, 1 (the node answered an
 * error, or none runs), 2 (usage). */
int dagi_keys_cli(int argc, char **argv);

#endif
