/* The telegram role (tg_role.c): the agents' Telegram bots. */
#ifndef DAGI_TELEGRAM_TELEGRAM_H
#define DAGI_TELEGRAM_TELEGRAM_H

#include "node/node.h"

extern const struct dagi_role dagi_role_telegram;

/* `dagi telegram set-webhook AGENT URL` and `dagi telegram info AGENT`
 * (tg_cli.c); argv[0] is "telegram".  Returns the exit code. */
int dagi_telegram_cli(int argc, char **argv);

#endif
