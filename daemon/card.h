/*
 * card.h -- what a checkpoint is: its lineage (documents per language and source), its
 * guard verdict, the decisions about it and its promotions, as JSON (one query) and as
 * a Markdown model card.  mnemod writes both beside a promoted checkpoint; mnemoctl
 * lineage and show print them.
 */
#ifndef MNEMO_CARD_H
#define MNEMO_CARD_H

#include "daemon/daemon.h"

#include <jansson.h>

/* card_json -- the card of checkpoint id; MN_ERR_INPUT when there is no such checkpoint */
MN_NODISCARD mn_status card_json(PGconn *c, int64_t id, json_t **out /* OUT */, mn_error *err);
/* card_markdown -- the card for people */
MN_NODISCARD mn_status card_markdown(const json_t *card, mn_buf *out, mn_error *err);
/* card_write -- dir/card.json and dir/card.md, each written atomically */
MN_NODISCARD mn_status card_write(PGconn *c, int64_t id, const char *dir, mn_error *err);

#endif /* MNEMO_CARD_H */
