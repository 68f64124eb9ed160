/*
 * config.c -- the YAML loader, validator and printer of mn_config.
 *
 * The file is parsed with libyaml's event API.  Nested mappings name dotted
 * keys ("log:" then "level:" is "log.level").  Every scalar is checked against
 * its row of the table (keys.c) the moment it is read, so an error points at
 * the exact line and column.  The loader fills a private copy and hands it
 * over only when the whole file is valid: a bad file changes nothing.
 *
 * Refused: unknown keys (with the nearest known key suggested), duplicate
 * keys, lists where a value is expected, anchors and aliases (no YAML bombs),
 * values out of bounds, unset environment variables, files over 1 MiB, values
 * their row's check refuses (a schedule that never fires, a webhook secret that
 * is not base64), and, once the whole file is read, keys that need another
 * (webhooks.url without webhooks.secret), named where the first one was set.
 */
#include "configs/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define REDACTED "<redacted>"

static size_t key_index(const mn_config_key *k)
{
  size_t n;
  return (size_t)(k - mn_config_keys(&n));
}

static void *field(mn_config *cfg, const mn_config_key *k)
{
  return (char *)cfg + k->offset;
}
static const void *cfield(const mn_config *cfg, const mn_config_key *k)
{
  return (const char *)cfg + k->offset;
}

/* ---------------------------------------------------------------- values */

/*
 * expand_env -- replace ${NAME} with getenv("NAME") and $$ with $.
 * On success *out is malloc'd text; on failure why says what went wrong.
 */
static bool expand_env(const char *in, char **out, char *why, size_t whylen)
{
  mn_buf b;
  mn_buf_init(&b, MN_CONFIG_MAX_FILE);
  *out = NULL;
  for (const char *p = in; *p;) {
    if (p[0] == '$' && p[1] == '$') {
      if (mn_buf_append(&b, "$", 1, NULL) != MN_OK) goto nomem;
      p += 2;
    } else if (p[0] == '$' && p[1] == '{') {
      const char *name = p + 2;
      const char *end = strchr(name, '}');
      size_t len = end ? (size_t)(end - name) : 0;
      bool ok = end && len > 0 && (isalpha((unsigned char)name[0]) || name[0] == '_');
      for (size_t i = 0; ok && i < len; i++)
        ok = isalnum((unsigned char)name[i]) || name[i] == '_';
      if (!ok) {
        snprintf(why, whylen, "malformed environment reference (write ${NAME}, or $$ for a $)");
        goto fail;
      }
      char var[256];
      if (len >= sizeof var) {
        snprintf(why, whylen, "environment variable name too long");
        goto fail;
      }
      memcpy(var, name, len);
      var[len] = '\0';
      const char *val = getenv(var);
      if (!val) {
        snprintf(why, whylen, "environment variable \"%s\" is not set", var);
        goto fail;
      }
      if (mn_buf_append(&b, val, strlen(val), NULL) != MN_OK) goto nomem;
      p = end + 1;
    } else {
      if (mn_buf_append(&b, p, 1, NULL) != MN_OK) goto nomem;
      p++;
    }
  }
  if (!b.data && mn_buf_reserve(&b, 0, NULL) != MN_OK) goto nomem;
  *out = b.data; /* the caller owns it now */
  return true;
nomem:
  snprintf(why, whylen, "out of memory");
fail:
  mn_buf_fini(&b);
  return false;
}

/*
 * apply_value -- parse text for key k and store it in cfg.
 * On failure cfg is unchanged and why explains (never quoting a secret).
 */
static bool apply_value(mn_config *cfg, const mn_config_key *k, const char *text, char *why,
                        size_t whylen)
{
  const char *shown = k->secret ? REDACTED : text;
  switch (k->type) {
  case MN_CFG_INT: {
    int64_t v;
    if (!mn_parse_i64(text, &v)) {
      snprintf(why, whylen, "expected an integer, got \"%s\"", shown);
      return false;
    }
    if (v < k->min || v > k->max) {
      snprintf(why, whylen, "%lld is out of bounds [%lld, %lld]", (long long)v, (long long)k->min,
               (long long)k->max);
      return false;
    }
    *(int64_t *)field(cfg, k) = v;
    return true;
  }
  case MN_CFG_DOUBLE: {
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(v)) {
      snprintf(why, whylen, "expected a number, got \"%s\"", shown);
      return false;
    }
    if (v < k->dmin || v > k->dmax) {
      snprintf(why, whylen, "%g is out of bounds [%g, %g]", v, k->dmin, k->dmax);
      return false;
    }
    *(double *)field(cfg, k) = v;
    return true;
  }
  case MN_CFG_ENUM:
    for (int i = 0; k->choices[i]; i++) {
      if (strcasecmp(text, k->choices[i]) == 0) {
        *(int *)field(cfg, k) = i;
        return true;
      }
    }
    {
      char list[200] = "";
      size_t used = 0;
      for (int i = 0; k->choices[i] && used < sizeof list; i++)
        used +=
            (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", k->choices[i]);
      snprintf(why, whylen, "expected one of %s, got \"%s\"", list, shown);
    }
    return false;
  case MN_CFG_STRING: {
    if (k->check && !k->check(text, why, whylen)) return false;
    char *copy = strdup(text);
    if (!copy) {
      snprintf(why, whylen, "out of memory");
      return false;
    }
    char **slot = field(cfg, k);
    free(*slot);
    *slot = copy;
    return true;
  }
  }
  snprintf(why, whylen, "unknown type");
  return false;
}

/* ---------------------------------------------------------------- lifecycle */

mn_status mn_config_init(mn_config *cfg, mn_error *err)
{
  size_t n;
  const mn_config_key *keys = mn_config_keys(&n);
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < n; i++) {
    char why[256];
    if (!apply_value(cfg, &keys[i], keys[i].def, why, sizeof why)) {
      mn_config_fini(cfg);
      return mn_error_set(err, strstr(why, "memory") ? MN_ERR_NOMEM : MN_ERR_CONFIG,
                          "default of \"%s\": %s", keys[i].key, why);
    }
    cfg->origin[i] = (mn_cfg_origin){.what = "default"};
  }
  return MN_OK;
}

void mn_config_fini(mn_config *cfg)
{
  size_t n;
  const mn_config_key *keys = mn_config_keys(&n);
  for (size_t i = 0; i < n; i++) {
    if (keys[i].type == MN_CFG_STRING) {
      char **slot = field(cfg, &keys[i]);
      free(*slot);
      *slot = NULL;
    }
  }
  free(cfg->source);
  cfg->source = NULL;
}

static mn_status set_value(mn_config *cfg, const char *key, const char *value, const char *origin,
                           bool expand, mn_error *err)
{
  const mn_config_key *k = mn_config_key_find(key);
  if (!k) return mn_error_set(err, MN_ERR_CONFIG, "unknown configuration key \"%s\"", key);
  char why[256];
  char *text = expand ? NULL : strdup(value);
  bool ok = expand ? expand_env(value, &text, why, sizeof why) : text != NULL;
  if (!ok && !expand) snprintf(why, sizeof why, "out of memory");
  if (!ok || !apply_value(cfg, k, text, why, sizeof why)) {
    free(text);
    return mn_error_set(err, MN_ERR_CONFIG, "%s: key \"%s\": %s", origin, key, why);
  }
  free(text);
  cfg->origin[key_index(k)] = (mn_cfg_origin){.what = origin};
  return MN_OK;
}

mn_status mn_config_set(mn_config *cfg, const char *key, const char *value, const char *origin,
                        mn_error *err)
{
  return set_value(cfg, key, value, origin, true, err);
}

mn_status mn_config_set_literal(mn_config *cfg, const char *key, const char *value,
                                const char *origin, mn_error *err)
{
  return set_value(cfg, key, value, origin, false, err);
}

/* ---------------------------------------------------------------- suggestions */

static const char *leaf_of(const char *key)
{
  const char *dot = strrchr(key, '.');
  return dot ? dot + 1 : key;
}

/* consider -- keep cand (len bytes of it) in out when it is nearer to unknown than *best. */
static void consider(const char *unknown, const char *cand, size_t len, size_t extra, char *out,
                     size_t outlen, size_t *best)
{
  char c[128];
  snprintf(c, sizeof c, "%.*s", (int)len, cand);
  size_t d = mn_edit_distance(unknown, c) + extra;
  if (d < *best) {
    *best = d;
    snprintf(out, outlen, "%s", c);
  }
}

/* nearest_key -- the known key or section closest to an unknown one, into out; false if none is
 * near. */
static bool nearest_key(const char *unknown, char *out, size_t outlen)
{
  size_t n;
  const mn_config_key *keys = mn_config_keys(&n);
  size_t best = SIZE_MAX;
  for (size_t i = 0; i < n; i++) {
    const char *k = keys[i].key;
    consider(unknown, k, strlen(k), 0, out, outlen, &best);
    /* every section above the key: "databse" is near "database" */
    for (const char *dot = strchr(k, '.'); dot; dot = strchr(dot + 1, '.'))
      consider(unknown, k, (size_t)(dot - k), 0, out, outlen, &best);
    /* a right leaf in the wrong place ("level" at the top) is a near miss too */
    size_t dl = mn_edit_distance(leaf_of(unknown), leaf_of(k)) + 1;
    if (dl < best) {
      best = dl;
      snprintf(out, outlen, "%s", k);
    }
  }
  size_t len = strlen(unknown);
  size_t limit = len / 3 > 2 ? len / 3 : 2;
  return best <= limit;
}

/* is_section -- does some key start with "prefix."? */
static bool is_section(const char *prefix)
{
  size_t n, pl = strlen(prefix);
  const mn_config_key *keys = mn_config_keys(&n);
  for (size_t i = 0; i < n; i++)
    if (strncmp(keys[i].key, prefix, pl) == 0 && keys[i].key[pl] == '.') return true;
  return false;
}

/* ---------------------------------------------------------------- the YAML walk */

typedef struct loader {
  yaml_parser_t parser;
  const char *name;
  mn_config *cfg;
  mn_error *err;
} loader;

static mn_status fail_at(loader *l, yaml_mark_t m, const char *key, const char *fmt, ...)
    MN_PRINTF(4, 5);

static mn_status fail_at(loader *l, yaml_mark_t m, const char *key, const char *fmt, ...)
{
  char why[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  if (key)
    return mn_error_set(l->err, MN_ERR_CONFIG, "%s:%zu:%zu: key \"%s\": %s", l->name, m.line + 1,
                        m.column + 1, key, why);
  return mn_error_set(l->err, MN_ERR_CONFIG, "%s:%zu:%zu: %s", l->name, m.line + 1, m.column + 1,
                      why);
}

static mn_status next_event(loader *l, yaml_event_t *ev)
{
  if (yaml_parser_parse(&l->parser, ev)) return MN_OK;
  yaml_parser_t *p = &l->parser;
  if (p->error == YAML_MEMORY_ERROR)
    return mn_error_set(l->err, MN_ERR_NOMEM, "%s: out of memory parsing YAML", l->name);
  fail_at(l, p->problem_mark, NULL, "invalid YAML: %s", p->problem ? p->problem : "parse error");
  if (p->context)
    mn_error_detail(l->err, "%s at line %zu, column %zu", p->context, p->context_mark.line + 1,
                    p->context_mark.column + 1);
  return MN_ERR_CONFIG;
}

static const char *event_name(yaml_event_type_t t)
{
  switch (t) {
  case YAML_SEQUENCE_START_EVENT: return "a list";
  case YAML_MAPPING_START_EVENT: return "a mapping";
  case YAML_ALIAS_EVENT: return "an alias";
  case YAML_SCALAR_EVENT: return "a scalar";
  default: return "an unexpected YAML event";
  }
}

static bool is_null_scalar(const yaml_event_t *ev)
{
  if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
  const char *v = (const char *)ev->data.scalar.value;
  return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
         strcmp(v, "NULL") == 0;
}

static mn_status parse_mapping(loader *l, const char *prefix);

/* handle_value -- the value event ev belongs to key (dotted); ev is consumed by the caller. */
static mn_status handle_value(loader *l, const char *key, yaml_mark_t key_mark, yaml_event_t *ev)
{
  const mn_config_key *k = mn_config_key_find(key);
  bool anchored = ev->type == YAML_ALIAS_EVENT ||
                  (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.anchor) ||
                  (ev->type == YAML_MAPPING_START_EVENT && ev->data.mapping_start.anchor) ||
                  (ev->type == YAML_SEQUENCE_START_EVENT && ev->data.sequence_start.anchor);
  if (anchored) return fail_at(l, ev->start_mark, key, "anchors and aliases are not supported");
  if (ev->type == YAML_MAPPING_START_EVENT) {
    if (is_section(key)) return parse_mapping(l, key);
    if (k) return fail_at(l, ev->start_mark, key, "expected a single value, got a mapping");
  } else if (ev->type == YAML_SCALAR_EVENT && k) {
    const char *raw = (const char *)ev->data.scalar.value;
    char why[256];
    char *text = NULL;
    if (strlen(raw) != ev->data.scalar.length)
      return fail_at(l, ev->start_mark, key, "value contains a NUL byte");
    if (is_null_scalar(ev) && k->type != MN_CFG_STRING)
      return fail_at(l, ev->start_mark, key, "no value given");
    if (!expand_env(is_null_scalar(ev) ? "" : raw, &text, why, sizeof why) ||
        !apply_value(l->cfg, k, text, why, sizeof why)) {
      free(text);
      return fail_at(l, ev->start_mark, key, "%s", why);
    }
    free(text);
    l->cfg->origin[key_index(k)] = (mn_cfg_origin){.what = l->cfg->source,
                                                   .line = (int)ev->start_mark.line + 1,
                                                   .col = (int)ev->start_mark.column + 1};
    return MN_OK;
  } else if (ev->type == YAML_SCALAR_EVENT && is_section(key)) {
    return fail_at(l, ev->start_mark, key, "is a section: expected a mapping of keys");
  } else if (k || is_section(key)) {
    return fail_at(l, ev->start_mark, key, "expected %s, got %s",
                   k ? "a single value" : "a mapping", event_name(ev->type));
  }
  char near[128];
  if (nearest_key(key, near, sizeof near))
    return fail_at(l, key_mark, key, "unknown key; did you mean \"%s\"?", near);
  return fail_at(l, key_mark, key, "unknown key");
}

/* parse_mapping -- after a MAPPING_START, read pairs up to the MAPPING_END. */
static mn_status parse_mapping(loader *l, const char *prefix)
{
  mn_status rc = MN_OK;
  char *seen[MN_CONFIG_MAX_KEYS];
  size_t nseen = 0;
  for (;;) {
    yaml_event_t kev, vev;
    rc = next_event(l, &kev);
    if (rc != MN_OK) break;
    if (kev.type == YAML_MAPPING_END_EVENT) {
      yaml_event_delete(&kev);
      break;
    }
    if (kev.type != YAML_SCALAR_EVENT) {
      rc = fail_at(l, kev.start_mark, NULL, "expected a key, got %s", event_name(kev.type));
      yaml_event_delete(&kev);
      break;
    }
    char key[256];
    const char *name = (const char *)kev.data.scalar.value;
    int kl = snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", name);
    if (kl < 0 || (size_t)kl >= sizeof key || strlen(name) != kev.data.scalar.length) {
      rc = fail_at(l, kev.start_mark, NULL, "key too long or not text");
      yaml_event_delete(&kev);
      break;
    }
    if (strchr(name, '.')) { /* "log.level: x" would dodge the duplicate check of "log:" */
      rc = fail_at(l, kev.start_mark, key,
                   "a key name may not contain \".\": nest it in its "
                   "section instead");
      yaml_event_delete(&kev);
      break;
    }
    for (size_t i = 0; i < nseen && rc == MN_OK; i++)
      if (strcmp(seen[i], key) == 0) rc = fail_at(l, kev.start_mark, key, "duplicate key");
    if (rc == MN_OK && nseen == MN_CONFIG_MAX_KEYS)
      rc = fail_at(l, kev.start_mark, key, "too many keys in one mapping");
    if (rc == MN_OK && !(seen[nseen] = strdup(key)))
      rc = mn_error_set(l->err, MN_ERR_NOMEM, "%s: out of memory", l->name);
    if (rc == MN_OK) nseen++;
    yaml_mark_t kmark = kev.start_mark;
    yaml_event_delete(&kev);
    if (rc != MN_OK) break;
    rc = next_event(l, &vev);
    if (rc != MN_OK) break;
    rc = handle_value(l, key, kmark, &vev);
    yaml_event_delete(&vev);
    if (rc != MN_OK) break;
  }
  for (size_t i = 0; i < nseen; i++)
    free(seen[i]);
  return rc;
}

static mn_status parse_document(loader *l)
{
  mn_status rc;
  yaml_event_t ev;
  /* STREAM_START */
  if ((rc = next_event(l, &ev)) != MN_OK) return rc;
  yaml_event_delete(&ev);
  if ((rc = next_event(l, &ev)) != MN_OK) return rc;
  if (ev.type == YAML_STREAM_END_EVENT) { /* an empty file: all defaults */
    yaml_event_delete(&ev);
    return MN_OK;
  }
  yaml_event_delete(&ev); /* DOCUMENT_START */
  if ((rc = next_event(l, &ev)) != MN_OK) return rc;
  if (ev.type == YAML_SCALAR_EVENT && is_null_scalar(&ev)) {
    yaml_event_delete(&ev); /* a document with only comments */
  } else if (ev.type != YAML_MAPPING_START_EVENT) {
    rc = fail_at(l, ev.start_mark, NULL, "the top level must be a mapping of keys, got %s",
                 event_name(ev.type));
    yaml_event_delete(&ev);
    return rc;
  } else {
    bool anchored = ev.data.mapping_start.anchor != NULL;
    yaml_mark_t m = ev.start_mark;
    yaml_event_delete(&ev);
    if (anchored) return fail_at(l, m, NULL, "anchors and aliases are not supported");
    if ((rc = parse_mapping(l, "")) != MN_OK) return rc;
  }
  if ((rc = next_event(l, &ev)) != MN_OK) return rc; /* DOCUMENT_END */
  yaml_event_delete(&ev);
  if ((rc = next_event(l, &ev)) != MN_OK) return rc;
  if (ev.type != YAML_STREAM_END_EVENT) {
    rc = fail_at(l, ev.start_mark, NULL, "only one YAML document is allowed");
  }
  yaml_event_delete(&ev);
  return rc;
}

/* ---------------------------------------------------------------- rules between keys */

/* fail_key -- an error about key k of cfg, at the place its value came from */
static mn_status fail_key(const mn_config *cfg, const mn_config_key *k, mn_error *err,
                          const char *fmt, ...) MN_PRINTF(4, 5);

static mn_status fail_key(const mn_config *cfg, const mn_config_key *k, mn_error *err,
                          const char *fmt, ...)
{
  char why[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  const mn_cfg_origin *o = &cfg->origin[key_index(k)];
  const char *what = o->what ? o->what : "default";
  if (o->line)
    return mn_error_set(err, MN_ERR_CONFIG, "%s:%d:%d: key \"%s\": %s", what, o->line, o->col,
                        k->key, why);
  return mn_error_set(err, MN_ERR_CONFIG, "%s: key \"%s\": %s", what, k->key, why);
}

/* check_together -- what one key's value asks of another's */
static mn_status check_together(const mn_config *cfg, mn_error *err)
{
  if (*cfg->webhooks.url && !*cfg->webhooks.secret)
    return fail_key(cfg, mn_config_key_find("webhooks.url"), err,
                    "webhooks are signed: set webhooks.secret too (whsec_ + base64)");
  if (!*cfg->console.tls_cert != !*cfg->console.tls_key)
    return fail_key(
        cfg, mn_config_key_find(*cfg->console.tls_cert ? "console.tls_cert" : "console.tls_key"),
        err, "TLS needs both console.tls_cert and console.tls_key (PEM files)");
  return MN_OK;
}

mn_status mn_config_load_buffer(const char *name, const char *data, size_t len, mn_config *out,
                                mn_error *err)
{
  mn_status rc = MN_OK;
  mn_config cfg;
  loader l = {.name = name, .cfg = &cfg, .err = err};

  if ((rc = mn_config_init(&cfg, err)) != MN_OK) return rc;
  if (len > MN_CONFIG_MAX_FILE) {
    rc = mn_error_set(err, MN_ERR_CONFIG, "%s: file of %zu bytes exceeds the limit of %u bytes",
                      name, len, MN_CONFIG_MAX_FILE);
    goto out;
  }
  if (!(cfg.source = strdup(name))) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "%s: out of memory", name);
    goto out;
  }
  if (!yaml_parser_initialize(&l.parser)) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "%s: out of memory starting the YAML parser", name);
    goto out;
  }
  yaml_parser_set_input_string(&l.parser, (const unsigned char *)data, len);
  rc = parse_document(&l);
  yaml_parser_delete(&l.parser);
  if (rc == MN_OK) rc = check_together(&cfg, err);
out:
  if (rc == MN_OK)
    *out = cfg; /* the caller owns it now */
  else
    mn_config_fini(&cfg);
  return rc;
}

mn_status mn_config_load_file(const char *path, mn_config *out, mn_error *err)
{
  mn_buf b;
  mn_buf_init(&b, MN_CONFIG_MAX_FILE);
  mn_status rc = mn_buf_read_file(&b, path, err);
  if (rc == MN_ERR_INPUT)
    rc = mn_error_set(err, MN_ERR_CONFIG, "%s: file exceeds the limit of %u bytes", path,
                      MN_CONFIG_MAX_FILE);
  if (rc == MN_OK) rc = mn_config_load_buffer(path, b.data, b.len, out, err);
  mn_buf_fini(&b);
  return rc;
}

/* ---------------------------------------------------------------- reload */

static bool same_value(const mn_config *a, const mn_config *b, const mn_config_key *k)
{
  switch (k->type) {
  case MN_CFG_INT: return *(const int64_t *)cfield(a, k) == *(const int64_t *)cfield(b, k);
  case MN_CFG_DOUBLE: {
    double x = *(const double *)cfield(a, k), y = *(const double *)cfield(b, k);
    return memcmp(&x, &y, sizeof x) == 0; /* the same text reads as the same bits */
  }
  case MN_CFG_ENUM: return *(const int *)cfield(a, k) == *(const int *)cfield(b, k);
  case MN_CFG_STRING: {
    const char *x = *(char *const *)cfield(a, k), *y = *(char *const *)cfield(b, k);
    return strcmp(x ? x : "", y ? y : "") == 0;
  }
  }
  return false;
}

mn_status mn_config_keep_fixed(mn_config *next, const mn_config *cur, bool *changed, mn_error *err)
{
  size_t n;
  const mn_config_key *keys = mn_config_keys(&n);
  for (size_t i = 0; i < n; i++) {
    const mn_config_key *k = &keys[i];
    bool differs = !same_value(next, cur, k);
    if (changed) changed[i] = !k->reloadable && differs;
    if (k->reloadable || !differs) continue;
    if (k->type == MN_CFG_STRING) {
      const char *v = *(char *const *)cfield(cur, k);
      char *copy = strdup(v ? v : "");
      if (!copy) return mn_error_set(err, MN_ERR_NOMEM, "out of memory keeping \"%s\"", k->key);
      char **slot = field(next, k);
      free(*slot);
      *slot = copy;
    } else {
      memcpy(field(next, k), cfield(cur, k),
             k->type == MN_CFG_INT      ? sizeof(int64_t)
             : k->type == MN_CFG_DOUBLE ? sizeof(double)
                                        : sizeof(int));
    }
    /* not cur's origin: its file name belongs to cur, which the caller is about to free */
    next->origin[i] = (mn_cfg_origin){.what = "kept: changing it needs a restart"};
  }
  return MN_OK;
}

/* ---------------------------------------------------------------- printing */

static mn_status yaml_quote(mn_buf *out, const char *s, mn_error *err)
{
  mn_status rc = mn_buf_append(out, "\"", 1, err);
  for (const char *p = s; *p && rc == MN_OK; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\')
      rc = mn_buf_appendf(out, err, "\\%c", c);
    else if (c < 0x20 || c == 0x7f)
      rc = mn_buf_appendf(out, err, "\\x%02x", c);
    else
      rc = mn_buf_append(out, p, 1, err);
  }
  if (rc == MN_OK) rc = mn_buf_append(out, "\"", 1, err);
  return rc;
}

static mn_status value_text(const mn_config *cfg, const mn_config_key *k, mn_buf *out,
                            mn_error *err)
{
  switch (k->type) {
  case MN_CFG_DOUBLE: {
    /* the shortest text that reads back as the same number */
    double v = *(const double *)cfield(cfg, k);
    char text[40];
    for (int prec = 6; prec <= 17; prec++) {
      snprintf(text, sizeof text, "%.*g", prec, v);
      if (strtod(text, NULL) == v) break;
    }
    return mn_buf_appendf(out, err, "%s", text);
  }
  case MN_CFG_INT:
    return mn_buf_appendf(out, err, "%lld", (long long)*(const int64_t *)cfield(cfg, k));
  case MN_CFG_ENUM: return mn_buf_appendf(out, err, "%s", k->choices[*(const int *)cfield(cfg, k)]);
  case MN_CFG_STRING: {
    const char *s = *(char *const *)cfield(cfg, k);
    if (k->secret && s && *s) return yaml_quote(out, REDACTED, err);
    return yaml_quote(out, s ? s : "", err);
  }
  }
  return MN_OK;
}

/* daemon_only -- keys of the daemon's own connections: the worker has no database, sends
 * no webhooks and serves no console, so a worker's config leaves them (and with them every secret)
 * out */
static bool daemon_only(const mn_config_key *k)
{
  return strncmp(k->key, "database.", 9) == 0 || strncmp(k->key, "webhooks.", 9) == 0 ||
         strncmp(k->key, "console.", 8) == 0;
}

static mn_status dump(const mn_config *cfg, bool worker, mn_buf *out, mn_error *err)
{
  size_t n;
  const mn_config_key *keys = mn_config_keys(&n);
  mn_status rc = MN_OK;
  char section[256] = "";
  for (size_t i = 0; i < n && rc == MN_OK; i++) {
    const mn_config_key *k = &keys[i];
    if (worker && daemon_only(k)) continue;
    assert(!(worker && k->secret)); /* a new secret key belongs to the daemon's sections */
    const char *leaf = leaf_of(k->key);
    size_t slen = (size_t)(leaf - k->key);
    char sec[256];
    snprintf(sec, sizeof sec, "%.*s", slen ? (int)slen - 1 : 0, k->key);
    if (strcmp(sec, section) != 0) {
      /* keys are grouped by section in the table; print each header once */
      if (*sec) rc = mn_buf_appendf(out, err, "%s:\n", sec);
      snprintf(section, sizeof section, "%s", sec);
    }
    const char *indent = *sec ? "  " : "";
    if (rc == MN_OK) rc = mn_buf_appendf(out, err, "%s%s: ", indent, leaf);
    if (rc == MN_OK) rc = value_text(cfg, k, out, err);
    const mn_cfg_origin *o = &cfg->origin[i];
    if (rc == MN_OK && o->line)
      rc = mn_buf_appendf(out, err, "  # %s:%d:%d%s\n", o->what, o->line, o->col,
                          k->secret ? ", secret" : "");
    else if (rc == MN_OK)
      rc = mn_buf_appendf(out, err, "  # %s%s\n", o->what ? o->what : "default",
                          k->secret ? ", secret" : "");
  }
  return rc;
}

mn_status mn_config_dump(const mn_config *cfg, mn_buf *out, mn_error *err)
{
  return dump(cfg, false, out, err);
}

mn_status mn_config_dump_worker(const mn_config *cfg, mn_buf *out, mn_error *err)
{
  return dump(cfg, true, out, err);
}

mn_status mn_config_describe(mn_buf *out, mn_error *err)
{
  size_t n;
  const mn_config_key *keys = mn_config_keys(&n);
  mn_status rc = mn_buf_appendf(out, err,
                                "| key | type | default | bounds | reloadable | help |\n"
                                "|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < n && rc == MN_OK; i++) {
    const mn_config_key *k = &keys[i];
    char bounds[200] = "";
    const char *type = "string";
    if (k->type == MN_CFG_INT) {
      type = "integer";
      snprintf(bounds, sizeof bounds, "%lld .. %lld", (long long)k->min, (long long)k->max);
    } else if (k->type == MN_CFG_DOUBLE) {
      type = "number";
      snprintf(bounds, sizeof bounds, "%g .. %g", k->dmin, k->dmax);
    } else if (k->type == MN_CFG_ENUM) {
      type = "one of";
      size_t used = 0;
      for (int c = 0; k->choices[c] && used < sizeof bounds; c++)
        used += (size_t)snprintf(bounds + used, sizeof bounds - used, "%s%s", c ? ", " : "",
                                 k->choices[c]);
    }
    rc = mn_buf_appendf(out, err, "| `%s` | %s%s | `%s` | %s | %s | %s |\n", k->key, type,
                        k->secret ? " (secret)" : "", k->def, bounds, k->reloadable ? "yes" : "no",
                        k->help);
  }
  return rc;
}

void mn_config_apply_log(const mn_config *cfg)
{
  mn_log_configure((mn_log_level)cfg->log.level, (mn_log_format)cfg->log.format, -1);
}

/* safe_config -- a file a config may be read from without asking: a regular file, owned by
 * this user or root, that no one else may write (a config names programs to run:
 * daemon.worker) */
static bool safe_config(const char *path)
{
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || access(path, R_OK) != 0) return false;
  if (st.st_uid != getuid() && st.st_uid != 0) return false;
  return (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* home_dir -- $HOME, else the password database's */
static const char *home_dir(void)
{
  const char *home = getenv("HOME");
  if (home && *home == '/') return home;
  struct passwd *pw = getpwuid(getuid());
  return pw && pw->pw_dir && *pw->pw_dir == '/' ? pw->pw_dir : NULL;
}

/* xdg_dir -- $NAME when it is an absolute path (the XDG rule), else HOME/fallback */
static int xdg_dir(const char *name, const char *fallback, const char *leaf, char *buf, size_t cap)
{
  const char *x = getenv(name), *home = home_dir();
  if (x && *x == '/') return snprintf(buf, cap, "%s/%s", x, leaf);
  if (home) return snprintf(buf, cap, "%s/%s/%s", home, fallback, leaf);
  return -1;
}

const char *mn_config_find(char *buf, size_t cap)
{
  const char *env = getenv("MNEMO_CONFIG");
  if (env && *env) return env;
  if (safe_config("mnemo.yaml")) return "mnemo.yaml";
  int n = xdg_dir("XDG_CONFIG_HOME", ".config", "mnemo/mnemo.yaml", buf, cap);
  if (n > 0 && (size_t)n < cap && safe_config(buf)) return buf;
  if (safe_config("/etc/mnemo/mnemo.yaml")) return "/etc/mnemo/mnemo.yaml";
  return NULL;
}

mn_status mn_config_adhoc(mn_config *cfg, mn_error *err)
{
  const mn_config_key *k = mn_config_key_find("daemon.data_dir");
  size_t n, i;
  const mn_config_key *keys = mn_config_keys(&n);
  for (i = 0; i < n && &keys[i] != k; i++)
    ;
  if (i == n || strcmp(cfg->origin[i].what, "default") != 0) return MN_OK;
  char dir[4096];
  int len = xdg_dir("XDG_STATE_HOME", ".local/state", "mnemo", dir, sizeof dir);
  if (len <= 0 || (size_t)len >= sizeof dir)
    return mn_error_set(err, MN_ERR_CONFIG,
                        "no config file and no home folder: give daemon.data_dir (a run without "
                        "a config never uses the shared /var/lib/mnemo)");
  /* made now, parents too, for this user only: a fresh account has no ~/.local/state */
  for (char *p = dir + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      mkdir(dir, 0700);
      *p = '/';
    }
  mkdir(dir, 0700);
  return mn_config_set_literal(cfg, "daemon.data_dir", dir, "no config file: the user's own", err);
}
