/* `dagi users ...`, `dagi teams ...`, `dagi members ...` (identity_cli.c):
 * the identity graph through the admin API of a running node. */
#ifndef DAGI_IDENTITY_CLI_H
#define DAGI_IDENTITY_CLI_H

/* argv[0] is "users", "teams" or "members".  Returns the exit code: 0, 1
 * (the node answered an error, or none runs), 2 (usage). */
int dagi_identity_cli(int argc, char **argv);

#endif
