/*
 * sha256.c -- SHA-256 through OpenSSL's EVP interface.
 *
 * Used for document identity, checkpoint checksums and migration checksums.
 */
#include "common/common.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <string.h>

static mn_status ossl_fail(mn_error *err, const char *what)
{
  unsigned long e = ERR_get_error();
  char buf[256] = "";
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  /* allocation is the one failure OpenSSL's digest can really have */
  mn_status code = strcmp(what, "allocate") == 0 ? MN_ERR_NOMEM : MN_ERR_INTERNAL;
  mn_error_set(err, code, "could not %s SHA-256", what);
  return mn_error_detail(err, "%s", buf[0] ? buf : "no OpenSSL error queued");
}

mn_status mn_sha256_init(mn_sha256 *h, mn_error *err)
{
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  h->ctx = NULL;
  if (!c) return ossl_fail(err, "allocate");
  if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(c);
    return ossl_fail(err, "initialise");
  }
  h->ctx = c;
  return MN_OK;
}

mn_status mn_sha256_update(mn_sha256 *h, const void *p, size_t n, mn_error *err)
{
  if (EVP_DigestUpdate(h->ctx, p, n) != 1) return ossl_fail(err, "update");
  return MN_OK;
}

mn_status mn_sha256_final(mn_sha256 *h, uint8_t out[MN_SHA256_LEN], mn_error *err)
{
  unsigned len = 0;
  int ok = EVP_DigestFinal_ex(h->ctx, out, &len);
  mn_sha256_abort(h);
  if (ok != 1 || len != MN_SHA256_LEN) return ossl_fail(err, "finish");
  return MN_OK;
}

void mn_sha256_abort(mn_sha256 *h)
{
  EVP_MD_CTX_free(h->ctx);
  h->ctx = NULL;
}

void mn_hex_encode(const uint8_t *p, size_t n, char *out)
{
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * n] = '\0';
}

static int hex_digit(char c)
{
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

long mn_hex_decode(const char *hex, uint8_t *out, size_t max)
{
  size_t n = strlen(hex);
  if (n % 2 || n / 2 > max) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return (long)(n / 2);
}

mn_status mn_sha256_hex(const void *p, size_t n, char out[MN_SHA256_HEX_LEN + 1], mn_error *err)
{
  uint8_t d[MN_SHA256_LEN];
  unsigned len = 0;
  if (EVP_Digest(p, n, d, &len, EVP_sha256(), NULL) != 1 || len != MN_SHA256_LEN)
    return ossl_fail(err, "compute");
  mn_hex_encode(d, sizeof d, out);
  return MN_OK;
}
