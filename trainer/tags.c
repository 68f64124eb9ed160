/*
 * tags.c -- the language tag table.
 *
 * After a tokenizer's own ids each language has one tag <|lang:xxx|>, prepended to every
 * sequence so the model always knows the language.  The database assigns tag ids once,
 * numbered from TOK_FIRST_TAG (257, the byte tokenizer's first free id); with another
 * tokenizer the same tags start at its tok_base (tok_tags_rebase).  The table travels
 * inside every checkpoint and shard.
 */
#include "trainer/trainer.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tok_tag_of(const tok_tags *tags, const char *code)
{
  for (int i = 0; i < tags->n; i++)
    if (strcmp(tags->t[i].code, code) == 0) return tags->t[i].id;
  return -1;
}

const char *tok_code_of(const tok_tags *tags, int id)
{
  for (int i = 0; i < tags->n; i++)
    if (tags->t[i].id == id) return tags->t[i].code;
  return NULL;
}

mn_status tok_tags_add(tok_tags *tags, const char *code, int id, mn_error *err)
{
  if (!mn_lang_code_valid(code))
    return mn_error_set(err, MN_ERR_INPUT, "invalid language code \"%.16s\" for a tag", code);
  int have = tok_tag_of(tags, code);
  if (have >= 0 && (id < 0 || have == id)) return MN_OK;
  if (have >= 0)
    return mn_error_set(err, MN_ERR_INPUT, "language \"%s\" has tag %d, not %d", code, have, id);
  if (id < 0) {
    id = TOK_FIRST_TAG;
    for (int i = 0; i < tags->n; i++)
      if (tags->t[i].id >= id) id = tags->t[i].id + 1;
  }
  if (id < TOK_FIRST_TAG || id >= TOK_MAX_ID)
    return mn_error_set(err, MN_ERR_INPUT, "tag id %d of \"%s\" is out of range", id, code);
  const char *other = tok_code_of(tags, id);
  if (other)
    return mn_error_set(err, MN_ERR_INPUT, "tag id %d is already \"%s\", not \"%s\"", id, other,
                        code);
  if (tags->n >= TOK_MAX_TAGS)
    return mn_error_set(err, MN_ERR_INPUT, "more than %d language tags", TOK_MAX_TAGS);
  snprintf(tags->t[tags->n].code, sizeof tags->t[tags->n].code, "%s", code);
  tags->t[tags->n].id = id;
  tags->n++;
  return MN_OK;
}

mn_status tok_tags_to_json(const tok_tags *tags, char **out, mn_error *err)
{
  json_t *o = json_object();
  for (int i = 0; o && i < tags->n; i++)
    json_object_set_new(o, tags->t[i].code, json_integer(tags->t[i].id));
  *out = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(o);
  return *out ? MN_OK : mn_error_set(err, MN_ERR_NOMEM, "out of memory writing the tag table");
}

mn_status tok_tags_from_json(const char *text, tok_tags *tags, mn_error *err)
{
  json_error_t je;
  json_t *o = json_loads(text, 0, &je);
  memset(tags, 0, sizeof *tags);
  if (!json_is_object(o)) {
    json_decref(o);
    return mn_error_set(err, MN_ERR_CORRUPT, "the tag table is not a JSON object");
  }
  const char *code;
  json_t *v;
  mn_status rc = MN_OK;
  json_object_foreach(o, code, v)
  {
    if (!json_is_integer(v)) {
      rc = mn_error_set(err, MN_ERR_CORRUPT, "tag of \"%.16s\" is not an integer", code);
      break;
    }
    if ((rc = tok_tags_add(tags, code, (int)json_integer_value(v), err)) != MN_OK) break;
  }
  json_decref(o);
  return rc;
}

mn_status tok_tags_read(const char *path, tok_tags *tags, mn_error *err)
{
  FILE *f = fopen(path, "r");
  if (!f) return mn_error_set(err, MN_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
  char line[256];
  int ln = 0;
  while (fgets(line, sizeof line, f)) {
    ln++;
    /* code, a tab, a decimal id from TOK_FIRST_TAG, the end of the line: nothing else */
    char *tab = strchr(line, '\t'), *end;
    line[strcspn(line, "\r\n")] = 0;
    errno = 0;
    long id = tab ? strtol(tab + 1, &end, 10) : -1;
    if (tab) *tab = 0;
    mn_status rc = MN_ERR_INPUT;
    if (!tab || errno || end == tab + 1 || *end || tab[1] == '-' || tab[1] == '+' || tab[1] == ' ')
      mn_error_set(err, MN_ERR_INPUT, "expected \"code<TAB>tag id\"");
    else if (id < TOK_FIRST_TAG || id >= TOK_MAX_ID)
      mn_error_set(err, MN_ERR_INPUT, "tag id %.20s of \"%.16s\" is not between %d and %d", tab + 1,
                   line, TOK_FIRST_TAG, TOK_MAX_ID - 1);
    else
      rc = tok_tags_add(tags, line, (int)id, err);
    if (rc != MN_OK) {
      fclose(f);
      return mn_error_prefix(err, "%s:%d", path, ln);
    }
  }
  fclose(f);
  return MN_OK;
}

mn_status tok_tags_rebase(tok_tags *tags, uint32_t from, uint32_t base, mn_error *err)
{
  for (int i = 0; i < tags->n; i++) {
    int64_t id = (int64_t)tags->t[i].id - from + base;
    if (id < (int64_t)base || id < TOK_FIRST_TAG || id >= TOK_MAX_ID)
      return mn_error_set(err, MN_ERR_INPUT,
                          "tag %d of \"%s\" does not fit a tokenizer whose tags start at %u",
                          tags->t[i].id, tags->t[i].code, base);
  }
  for (int i = 0; i < tags->n; i++)
    tags->t[i].id = (int)((int64_t)tags->t[i].id - from + base);
  return MN_OK;
}
