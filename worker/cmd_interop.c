/*
 * cmd_interop.c -- `mnemo export-hf`, `mnemo import-hf` and `mnemo import-llmc`: checkpoints
 * to and from other ecosystems (trainer/interop.c, trainer/hf.c).
 */
#include "worker/worker_int.h"

#include <jansson.h>

static int interop(worker_args *o, const char *cmd, bool export)
{
  mn_error err = {0};
  if (o->npos != 2)
    return worker__usage("%s takes two arguments: %s", cmd, export ? "CKPT DIR" : "FILE OUT");
  if ((export ? export_hf(o->pos[0], o->pos[1], &err) : import_llmc(o->pos[0], o->pos[1], &err)) !=
      MN_OK)
    return worker__fail(&err);
  worker__emit(json_pack("{s:s, s:s, s:s}", "event", cmd, "from", o->pos[0], "to", o->pos[1]));
  return MN_EXIT_OK;
}

int worker__cmd_export_hf(worker_ctx *w, worker_args *o)
{
  (void)w;
  return interop(o, "export-hf", true);
}

int worker__cmd_import_llmc(worker_ctx *w, worker_args *o)
{
  (void)w;
  return interop(o, "import-llmc", false);
}

const worker_opt worker__import_hf_opts[] = {
    WORKER_COUNT_UP_TO("tag-rows", tag_rows, "N", TOK_MAX_TAGS,
                       "rows for language tags after the tokenizer's ids (default: 256)"),
    WORKER_TEXT("tags", tags, "TSV",
                "the database's language tags, code<TAB>tag id a line (mnemoctl export writes "
                "DIR/tags.tsv): the checkpoint knows these languages"),
    WORKER_OPT_END};

int worker__cmd_import_hf(worker_ctx *w, worker_args *o)
{
  (void)w;
  mn_error err = {0};
  if (o->npos != 2) return worker__usage("import-hf takes two arguments: DIR OUT");
  tok_tags *tags = o->tags ? calloc(1, sizeof *tags) : NULL;
  if (o->tags && (!tags || tok_tags_read(o->tags, tags, &err) != MN_OK)) {
    free(tags);
    if (!err.msg[0]) mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    return worker__fail(&err);
  }
  mn_status rc = import_hf(o->pos[0], o->pos[1], (int)o->tag_rows, tags, &err);
  free(tags);
  if (rc != MN_OK) return worker__fail(&err);
  worker__emit(
      json_pack("{s:s, s:s, s:s}", "event", "import-hf", "from", o->pos[0], "to", o->pos[1]));
  return MN_EXIT_OK;
}
