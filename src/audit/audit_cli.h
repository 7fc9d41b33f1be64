/* `dagi audit verify|list`:
 *
 *   verify  opens the database the configuration names (as `dagi db` does;
 *           no node needs to run) and walks the chain: exit 0 intact, 1
 *           "broken at seq N: <why>" (or a store error), 2 usage.
 *   list    GET /v1/audit of the running node through its admin API
 *           (node/admin_client.h), printed as a table or --json. */
#ifndef DAGI_AUDIT_CLI_H
#define DAGI_AUDIT_CLI_H

/* argv[0] is "audit". */
int dagi_audit_cli(int argc, char **argv);

#endif
