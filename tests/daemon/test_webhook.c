/*
 * test_webhook.c -- Standard Webhooks signatures: the specification's example, a vector
 * worked out with Python's hmac (a UTF-8 body, a 32-byte key), verification (one of several
 * signatures; a changed body, id or timestamp refused; a stale timestamp refused), and bad
 * secrets and ids.
 */
#include "daemon/webhook.h"
#include "tests/test.h"

#include <string.h>

static void vectors(void)
{
  mn_webhook_key k;
  mn_error err = {0};
  char sig[MN_WEBHOOK_SIG_LEN + 1];
  const char *body = "{\"test\": 2432232314}";
  T_EQ_INT(mn_webhook_key_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &k, &err), MN_OK);
  T_EQ_INT(k.len, 24);
  T_EQ_INT(mn_webhook_sign(&k, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig,
                           &err),
           MN_OK);
  T_EQ_STR(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  const char *b2 = "{\"event\":\"promoted\",\"lang\":\"ქართული\"}";
  T_EQ_INT(mn_webhook_key_parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", &k, &err),
           MN_OK);
  T_EQ_INT(k.len, 32);
  T_EQ_INT(mn_webhook_sign(&k, "msg_2Qo4", 1795687200, b2, strlen(b2), sig, &err), MN_OK);
  T_EQ_STR(sig, "v1,R37Sg1v9lqogsWHZw3toZK++l3TVoC1j1QCEGwkWoyU=");
}

static void verify(void)
{
  mn_webhook_key k;
  mn_error err = {0};
  char sig[MN_WEBHOOK_SIG_LEN + 1], list[256];
  const char *body = "{\"event\":\"candidate_ready\"}";
  T_EQ_INT(mn_webhook_key_parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", &k, &err),
           MN_OK);
  T_EQ_INT(mn_webhook_sign(&k, "msg_1", 1000, body, strlen(body), sig, &err), MN_OK);
  /* a rotated secret: the old signature and the new one, space-separated */
  snprintf(list, sizeof list, "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= %s", sig);
  T_EQ_INT(mn_webhook_verify(&k, "msg_1", 1000, list, body, strlen(body), 1100, 300, &err), MN_OK);
  T_EQ_INT(mn_webhook_verify(&k, "msg_1", 1000, sig, "{}", 2, 1100, 300, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "no signature matches");
  T_EQ_INT(mn_webhook_verify(&k, "msg_2", 1000, sig, body, strlen(body), 1100, 300, &err),
           MN_ERR_INPUT);
  T_EQ_INT(mn_webhook_verify(&k, "msg_1", 1001, sig, body, strlen(body), 1100, 300, &err),
           MN_ERR_INPUT);
  T_EQ_INT(mn_webhook_verify(&k, "msg_1", 1000, sig, body, strlen(body), 1300, 300, &err), MN_OK);
  T_EQ_INT(mn_webhook_verify(&k, "msg_1", 1000, sig, body, strlen(body), 1301, 300, &err),
           MN_ERR_INPUT);
  T_CONTAINS(err.msg, "timestamp");
  T_EQ_INT(mn_webhook_verify(&k, "msg_1", 1000, "", body, strlen(body), 1100, 300, &err),
           MN_ERR_INPUT);
}

static void refused(void)
{
  mn_webhook_key k;
  mn_error err = {0};
  char sig[MN_WEBHOOK_SIG_LEN + 1];
  const char *bad[] = {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_short",
                       "whsec_!!!!"
                       "!!!!"
                       "!!!!!!!!!!!!!!!!!!!!!!!!",
                       "whsec_", NULL};
  for (int i = 0; bad[i]; i++) {
    T_EQ_INT(mn_webhook_key_parse(bad[i], &k, &err), MN_ERR_INPUT);
    T_CHECK(strstr(err.msg, "MfKQ") == NULL); /* the secret is never echoed */
  }
  T_EQ_INT(mn_webhook_key_parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", &k, &err),
           MN_OK);
  T_EQ_INT(mn_webhook_sign(&k, "a.b", 1, "x", 1, sig, &err), MN_ERR_INPUT);
  T_EQ_INT(mn_webhook_sign(&k, "", 1, "x", 1, sig, &err), MN_ERR_INPUT);
  T_EQ_INT(mn_webhook_sign(&k, "with space", 1, "x", 1, sig, &err), MN_ERR_INPUT);
}

int main(void)
{
  T_RUN(vectors);
  T_RUN(verify);
  T_RUN(refused);
  return T_DONE();
}
