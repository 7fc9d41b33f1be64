/* The config registry role (seed 1.2): versioned documents - agents,
 * prompts, routing rules, policies, quotas, feature flags, allow/block
 * lists - kept in the relational store with author, time, comment and
 * checksum, validated by the same code as `dagi config check` before they
 * are accepted (cplane/docset.h), and published whole to the KV bucket
 * dagi_config (key "current") after every change, where the data-plane
 * roles watch them.
 *
 * At start and on SIGHUP the files the node configuration names are
 * imported as a new revision when they changed.  The admin API is
 * /v1/config/... (docs/CONFIG_REGISTRY.md); `dagi config push|get|...`
 * uses it (registry_cli.h). */
#ifndef DAGI_REGISTRY_H
#define DAGI_REGISTRY_H

#include "node/node.h"

extern const struct dagi_role dagi_role_registry;

#endif
