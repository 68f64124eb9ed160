/*
 * values.c -- the values of keys that a type and bounds do not describe: webhook secrets
 * and webhook URLs (config.h).  Schedules have their own file (cron.c).
 *
 * Each is read here once, by the function the program that uses the value calls too (the
 * webhook thread decodes its key with mn_webhook_key_parse), and the key table checks
 * every value with it the moment it is read: a config that loads is one the daemon can
 * run, and `mnemoctl config check` says so with the same code.  Not for: signing
 * (daemon/webhook.c), sending (daemon/outbox.c).
 */
#include "configs/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_b64(unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

mn_status mn_webhook_key_parse(const char *secret, mn_webhook_key *key, mn_error *err)
{
  memset(key, 0, sizeof *key);
  size_t n = secret ? strlen(secret) : 0;
  uint8_t buf[3 * 128 / 4 + 3];
  /* base64 of 24-64 bytes: 32-88 characters, whole quads */
  if (n < 6 || strncmp(secret, "whsec_", 6) != 0 || n - 6 < 32 || n - 6 > 88 || (n - 6) % 4)
    return mn_error_set(err, MN_ERR_INPUT,
                        "a webhook secret is \"whsec_\" and the base64 of 24 to 64 bytes");
  /* the alphabet, with at most two '=' at the end: EVP_DecodeBlock alone would skip
   * blanks and take '=' anywhere */
  const char *b = secret + 6;
  size_t m = n - 6, pad = (b[m - 1] == '=') + (b[m - 1] == '=' && b[m - 2] == '=');
  for (size_t i = 0; i < m - pad; i++)
    if (!is_b64((unsigned char)b[i]))
      return mn_error_set(err, MN_ERR_INPUT, "the webhook secret is not valid base64");
  int k = EVP_DecodeBlock(buf, (const unsigned char *)b, (int)m);
  if (k < 0) return mn_error_set(err, MN_ERR_INPUT, "the webhook secret is not valid base64");
  /* EVP_DecodeBlock counts the padding's zero bytes: take them off */
  size_t len = (size_t)k - pad;
  if (len < 24 || len > MN_WEBHOOK_KEY_MAX) {
    OPENSSL_cleanse(buf, sizeof buf);
    return mn_error_set(err, MN_ERR_INPUT, "the webhook secret holds %zu bytes, want 24 to 64",
                        len);
  }
  memcpy(key->bytes, buf, len);
  key->len = len;
  OPENSSL_cleanse(buf, sizeof buf);
  return MN_OK;
}

mn_status mn_webhook_url_check(const char *url, mn_error *err)
{
  const char *p = url ? strstr(url, "://") : NULL;
  size_t scheme = p ? (size_t)(p - url) : 0;
  if (!p || !((scheme == 4 && strncasecmp(url, "http", 4) == 0) ||
              (scheme == 5 && strncasecmp(url, "https", 5) == 0)))
    return mn_error_set(err, MN_ERR_INPUT,
                        "webhook URL \"%s\": only http:// and https:// URLs are delivered to",
                        url ? url : "");
  for (const char *c = url; *c; c++)
    if ((unsigned char)*c <= ' ' || *c == 0x7f)
      return mn_error_set(err, MN_ERR_INPUT,
                          "webhook URL \"%s\": contains a blank or a control character", url);
  p += 3;
  if (strcspn(p, "/?#") == 0)
    return mn_error_set(err, MN_ERR_INPUT, "webhook URL \"%s\": names no host", url);
  return MN_OK;
}

int mn_listen_parse(const char *v, char *host, size_t hostlen, int *port)
{
  const char *colon;
  size_t hl;
  bool v6 = v[0] == '[';
  if (*v && strspn(v, "0123456789") == strlen(v)) { /* a bare port: loopback */
    char *end;
    errno = 0;
    long p = strtol(v, &end, 10);
    if (errno || p > 65535 || hostlen < sizeof "127.0.0.1") return -1;
    memcpy(host, "127.0.0.1", sizeof "127.0.0.1");
    *port = (int)p;
    return 0;
  }
  if (v6) {
    const char *close = strchr(v, ']');
    if (!close || close[1] != ':') return -1;
    hl = (size_t)(close - v - 1);
    v++;
    colon = close + 1;
  } else {
    colon = strrchr(v, ':');
    if (!colon || memchr(v, ':', (size_t)(colon - v))) return -1;
    hl = (size_t)(colon - v);
  }
  if (hl == 0 || hl >= hostlen) return -1;
  memcpy(host, v, hl);
  host[hl] = '\0';
  unsigned char addr[16];
  if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1) return -1;
  char *end;
  errno = 0;
  long p = strtol(colon + 1, &end, 10);
  if (colon[1] < '0' || colon[1] > '9' || *end || errno || p < 0 || p > 65535) return -1;
  *port = (int)p;
  return 0;
}
