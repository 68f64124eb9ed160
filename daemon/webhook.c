/*
 * webhook.c -- Standard Webhooks signatures (webhook.h): HMAC-SHA256 and base64 from
 * OpenSSL, the comparison in constant time (CRYPTO_memcmp).  The secret's decoding
 * (mn_webhook_key_parse) is the config's (configs/values.c): the validator refuses a
 * secret this code could not sign with.
 */
#include "daemon/webhook.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

mn_status mn_webhook_sign(const mn_webhook_key *key, const char *id, int64_t timestamp,
                          const void *body, size_t n, char out[MN_WEBHOOK_SIG_LEN + 1],
                          mn_error *err)
{
  size_t idn = id ? strlen(id) : 0;
  for (size_t i = 0; i < idn; i++)
    if (id[i] <= ' ' || id[i] > '~' || id[i] == '.') idn = 0;
  if (idn == 0 || idn > 255)
    return mn_error_set(err, MN_ERR_INPUT,
                        "a webhook id is 1-255 printable ASCII characters without '.'");
  char head[300];
  int hn = snprintf(head, sizeof head, "%s.%lld.", id, (long long)timestamp);
  unsigned char mac[32];
  size_t got = 0;
  EVP_MAC *alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                         OSSL_PARAM_construct_end()};
  bool ok = ctx && EVP_MAC_init(ctx, key->bytes, key->len, params) == 1 &&
            EVP_MAC_update(ctx, (const unsigned char *)head, (size_t)hn) == 1 &&
            EVP_MAC_update(ctx, body, n) == 1 && EVP_MAC_final(ctx, mac, &got, sizeof mac) == 1 &&
            got == sizeof mac;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(alg);
  if (!ok) return mn_error_set(err, MN_ERR_INTERNAL, "HMAC-SHA256 failed (OpenSSL)");
  memcpy(out, "v1,", 3);
  EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)sizeof mac); /* 44 characters and a NUL */
  OPENSSL_cleanse(mac, sizeof mac);
  return MN_OK;
}

mn_status mn_webhook_verify(const mn_webhook_key *key, const char *id, int64_t timestamp,
                            const char *signatures, const void *body, size_t n, int64_t now,
                            int64_t tolerance_s, mn_error *err)
{
  if (timestamp < now - tolerance_s || timestamp > now + tolerance_s)
    return mn_error_set(err, MN_ERR_INPUT,
                        "webhook %s: its timestamp is %lld s from now, more than the %lld "
                        "allowed (a replay, or a clock off)",
                        id ? id : "?", (long long)(timestamp - now), (long long)tolerance_s);
  char want[MN_WEBHOOK_SIG_LEN + 1];
  mn_status rc = mn_webhook_sign(key, id, timestamp, body, n, want, err);
  if (rc != MN_OK) return rc;
  for (const char *p = signatures; p && *p;) {
    while (*p == ' ')
      p++;
    size_t len = strcspn(p, " ");
    if (len == MN_WEBHOOK_SIG_LEN && CRYPTO_memcmp(p, want, MN_WEBHOOK_SIG_LEN) == 0) return MN_OK;
    p += len;
  }
  return mn_error_set(err, MN_ERR_INPUT, "webhook %s: no signature matches", id);
}
