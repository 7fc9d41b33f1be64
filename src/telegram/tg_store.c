/* Which Telegram updates were answered (tg_internal.h), in the relational
 * store so that it survives a restart: JetStream's de-duplication window
 * catches Telegram's quick retries, this catches a redelivery after a crash
 * between the answer and the ack.  Runs on the pool. */
#include <string.h>

#include "store/db.h"
#include "telegram/tg_internal.h"

#define TX_TRIES 5 /* PostgreSQL's SERIALIZABLE transactions may ask for a retry */

static int claim_once(struct dagi_db_conn *conn, const char *agent_id, int64_t update_id,
                      int64_t now_ms, enum tg_seen *seen, struct dagi_error *err)
{
    int rc = dagi_db_begin(conn, true, err);
    if (rc)
        return rc;
    struct dagi_db_value p[] = {dagi_db_text(agent_id), dagi_db_int(update_id),
                                dagi_db_int(now_ms)};
    int64_t affected = 0;
    rc = dagi_db_exec(conn,
                      "INSERT INTO telegram_updates (agent_id, update_id, state, updated_at_ms) "
                      "VALUES ($1, $2, 'processing', $3) ON CONFLICT DO NOTHING",
                      p, 3, &affected, err);
    if (!rc && affected == 1)
        *seen = TG_NEW;
    if (!rc && affected == 0) {
        struct dagi_db_rows *rows = NULL;
        rc = dagi_db_query(conn,
                           "SELECT state FROM telegram_updates WHERE agent_id = $1 AND "
                           "update_id = $2",
                           p, 2, &rows, err);
        if (!rc) {
            int got = dagi_db_rows_next(rows, err);
            const char *state = got == 1 ? dagi_db_col_text(rows, 0, NULL) : NULL;
            *seen = state && strcmp(state, "done") == 0 ? TG_DONE : TG_IN_PROGRESS;
            rc = got < 0 ? got : 0;
            dagi_db_rows_free(rows);
        }
    }
    if (!rc)
        rc = dagi_db_commit(conn, err);
    if (rc)
        dagi_db_rollback(conn);
    return rc;
}

int tg_store_claim(struct dagi_db_conn *conn, const char *agent_id, int64_t update_id,
                   int64_t now_ms, enum tg_seen *seen, struct dagi_error *err)
{
    int rc = DAGI_EAGAIN;
    for (int i = 0; i < TX_TRIES && rc == DAGI_EAGAIN; i++)
        rc = claim_once(conn, agent_id, update_id, now_ms, seen, err);
    return rc;
}

static int exec_tx(struct dagi_db_conn *conn, const char *sql, const struct dagi_db_value *p,
                   size_t n, struct dagi_error *err)
{
    int rc = DAGI_EAGAIN;
    for (int i = 0; i < TX_TRIES && rc == DAGI_EAGAIN; i++) {
        rc = dagi_db_begin(conn, true, err);
        if (!rc)
            rc = dagi_db_exec(conn, sql, p, n, NULL, err);
        if (!rc)
            rc = dagi_db_commit(conn, err);
        if (rc)
            dagi_db_rollback(conn);
    }
    return rc;
}

int tg_store_done(struct dagi_db_conn *conn, const char *agent_id, int64_t update_id,
                  int64_t now_ms, struct dagi_error *err)
{
    struct dagi_db_value p[] = {dagi_db_text(agent_id), dagi_db_int(update_id),
                                dagi_db_int(now_ms)};
    return exec_tx(conn,
                   "UPDATE telegram_updates SET state = 'done', updated_at_ms = $3 "
                   "WHERE agent_id = $1 AND update_id = $2",
                   p, 3, err);
}

int tg_store_purge(struct dagi_db_conn *conn, int64_t older_than_ms, struct dagi_error *err)
{
    struct dagi_db_value p[] = {dagi_db_int(older_than_ms)};
    return exec_tx(conn, "DELETE FROM telegram_updates WHERE updated_at_ms < $1", p, 1, err);
}
