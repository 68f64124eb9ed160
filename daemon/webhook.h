/*
 * webhook.h -- signatures of the daemon's webhooks, per Standard Webhooks
 * (https://www.standardwebhooks.com): each delivery carries the headers webhook-id,
 * webhook-timestamp (seconds since the epoch) and webhook-signature, "v1,<base64>" of
 * HMAC-SHA256 over "<id>.<timestamp>.<body>" with the endpoint's secret ("whsec_<base64>").
 * A receiver checks the signature in constant time and refuses a timestamp too far from its
 * clock (replays).  Pure functions; OpenSSL does the HMAC and base64.  The secret is read
 * by the config (mn_webhook_key_parse, configs/config.h), so a config that loads can sign.
 */
#ifndef MNEMO_WEBHOOK_H
#define MNEMO_WEBHOOK_H

#include "configs/config.h" /* mn_webhook_key, mn_webhook_key_parse */

#include <stdint.h>

enum { MN_WEBHOOK_SIG_LEN = 3 + 44 }; /* "v1," + base64 of 32 bytes */

/* mn_webhook_sign -- out receives "v1,<base64 signature>" (MN_WEBHOOK_SIG_LEN + 1 bytes).
 * id: 1-255 printable ASCII characters without '.'. */
MN_NODISCARD mn_status mn_webhook_sign(const mn_webhook_key *key, const char *id, int64_t timestamp,
                                       const void *body, size_t n, char out[MN_WEBHOOK_SIG_LEN + 1],
                                       mn_error *err);

/* mn_webhook_verify -- whether a delivery is authentic: one of the space-separated
 * signatures of `signatures` is ours (constant-time comparison) and the timestamp is within
 * tolerance_s of now.  MN_ERR_INPUT saying which check failed. */
MN_NODISCARD mn_status mn_webhook_verify(const mn_webhook_key *key, const char *id,
                                         int64_t timestamp, const char *signatures,
                                         const void *body, size_t n, int64_t now,
                                         int64_t tolerance_s, mn_error *err);

#endif /* MNEMO_WEBHOOK_H */
