/*
 * interop.c -- checkpoints to and from other ecosystems.
 *
 * export_hf: a folder Hugging Face loads, all of it or nothing: config.json, the weights
 * under the names of the model's class (trainer/hf.c: GPT2LMHeadModel for a model mnemo
 * trained, an imported model's own class and dtypes), tokenizer.json with the language tags
 * and tokenizer_config.json.  import_llmc: llm.c's fp32 GPT-2 checkpoint (a 256 x int32
 * header [20240326, 3, maxT, V, L, NH, C, Vp], then each tensor stacked over layers: wte,
 * wpe, ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb,
 * lnfw, lnfb) into our layer-major layout.
 */
#include "trainer/trainer_int.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LLMC_MAGIC 20240326
#define LLMC_FP32  3

/* write_json -- j (stolen) as DIR/name, atomically */
static mn_status write_json(const char *dir, const char *name, json_t *j, mn_error *err)
{
  char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
  json_decref(j);
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  mn_status rc = text ? mn_write_file_atomic(path, text, strlen(text), 0644, err)
                      : mn_error_set(err, MN_ERR_NOMEM, "out of memory writing %s", name);
  free(text);
  return rc;
}

/* write_tokenizer -- DIR/tokenizer.json (the model's tokenizer, its tags as special tokens)
 * and DIR/tokenizer_config.json, so that AutoTokenizer loads the same ids */
static mn_status write_tokenizer(const char *ckpt, const char *dir, const ckpt_meta *meta,
                                 mn_error *err)
{
  tokenizer *tok = NULL;
  char *text = NULL, path[4096];
  mn_status rc = tok_load(ckpt, &tok, NULL, err);
  if (rc == MN_OK) rc = tok_to_json(tok, &meta->tags, &text, err);
  if (rc != MN_OK) goto out;
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  if ((rc = mn_write_file_atomic(path, text, strlen(text), 0644, err)) != MN_OK) goto out;
  json_t *full = json_loads(text, 0, NULL), *added = json_object_get(full, "added_tokens"), *e;
  const char *eot = NULL;
  size_t i;
  json_array_foreach(added, i, e) if (json_integer_value(json_object_get(e, "id")) ==
                                      (json_int_t)tok_eot(tok)) eot =
      json_string_value(json_object_get(e, "content"));
  json_t *specials = json_array();
  for (int k = 0; k < meta->tags.n; k++)
    json_array_append_new(specials, json_sprintf("<|lang:%s|>", meta->tags.t[k].code));
  rc = write_json(dir, "tokenizer_config.json",
                  json_pack("{s:s, s:s?, s:s?, s:s?, s:i, s:o, s:b}", "tokenizer_class",
                            "PreTrainedTokenizerFast", "bos_token", eot, "eos_token", eot,
                            "unk_token", eot, "model_max_length", meta->config.max_seq_len,
                            "additional_special_tokens", specials, "clean_up_tokenization_spaces",
                            0),
                  err);
  json_decref(full);
out:
  free(text);
  tok_destroy(tok);
  return rc;
}

static const char *const export_files[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                                           "model.safetensors"};

/* export_into -- the export's files into the folder dir (which exists) */
static mn_status export_into(const char *ckpt, const char *dir, mn_error *err)
{
  ckpt_meta meta;
  gpt *m = NULL;
  mn_status rc = ckpt_read_meta(ckpt, &meta, err);
  if (rc != MN_OK) return rc;
  if ((rc = gpt_create(&meta.config, 1, 1, 0, kernels_cpu(), &m, err)) != MN_OK) return rc;
  if ((rc = ckpt_load(ckpt, m, &meta, err)) != MN_OK) goto out;
  tokenizer *tok = NULL;
  if ((rc = trainer__hf_origin_check(&meta, ckpt, err)) != MN_OK ||
      (rc = tok_load(ckpt, &tok, NULL, err)) != MN_OK)
    goto out;
  uint32_t eot = tok_eot(tok);
  tok_destroy(tok);
  json_t *cfg = trainer__hf_config(&meta, eot);
  char *tags = NULL;
  if (tok_tags_to_json(&meta.tags, &tags, err) == MN_OK) {
    json_object_set_new(cfg, "mnemo_language_tags", json_loads(tags, 0, NULL));
    free(tags);
  }
  char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(cfg);
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  rc = text ? mn_write_file_atomic(path, text, strlen(text), 0644, err)
            : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  free(text);
  if (rc != MN_OK) goto out;
  if ((rc = write_tokenizer(ckpt, dir, &meta, err)) != MN_OK) goto out;
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  rc = trainer__hf_write(path, m, &meta, err);
out:
  gpt_destroy(m);
  return rc;
}

/* export_hf -- all of it or nothing: the files go into a new folder beside dir, renamed to dir
 * at the end (dir absent or empty); a crash or an error leaves dir as it was */
mn_status export_hf(const char *ckpt, const char *dir_arg, mn_error *err)
{
  char dir[4096]; /* "hf/" is the folder hf: its temporary sibling is hf.tmp.PID, not hf/.tmp */
  size_t n = strlen(dir_arg);
  while (n > 1 && dir_arg[n - 1] == '/')
    n--;
  if (n == 0 || n >= sizeof dir)
    return mn_error_set(err, MN_ERR_USAGE, "export-hf needs a folder name (%zu bytes at most)",
                        sizeof dir - 1);
  memcpy(dir, dir_arg, n);
  dir[n] = '\0';
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)))
      empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    if (!empty)
      return mn_error_set(err, MN_ERR_INPUT,
                          "\"%s\" exists and is not empty: export-hf writes a folder of its own "
                          "(remove it or name another)",
                          dir);
  } else if (errno != ENOENT) {
    return mn_error_set(err, MN_ERR_IO, "could not open \"%s\": %s", dir, strerror(errno));
  }
  char tmp[4200], path[4300];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", dir, (int)getpid());
  if (mkdir(tmp, 0755) != 0)
    return mn_error_set(err, MN_ERR_IO, "could not create \"%s\": %s", tmp, strerror(errno));
  mn_status rc = export_into(ckpt, tmp, err);
  if (rc == MN_OK && rename(tmp, dir) != 0)
    rc = mn_error_set(err, MN_ERR_IO, "could not rename \"%s\" to \"%s\": %s", tmp, dir,
                      strerror(errno));
  if (rc == MN_OK) return mn_fsync_parent(dir, err);
  for (size_t i = 0; i < sizeof export_files / sizeof *export_files; i++) {
    snprintf(path, sizeof path, "%s/%s", tmp, export_files[i]);
    unlink(path);
  }
  rmdir(tmp);
  return rc;
}

mn_status import_llmc(const char *file, const char *out, mn_error *err)
{
  mn_buf b;
  gpt *m = NULL;
  mn_status rc;
  mn_buf_init(&b, (size_t)1 << 40);
  if ((rc = mn_buf_read_file(&b, file, err)) != MN_OK) goto out;
  if (b.len < 256 * 4) {
    rc = mn_error_set(err, MN_ERR_CORRUPT, "cannot import \"%s\": shorter than llm.c's header",
                      file);
    goto out;
  }
  int32_t hd[8];
  memcpy(hd, b.data, sizeof hd);
  if (hd[0] != LLMC_MAGIC || hd[1] != LLMC_FP32) {
    rc = mn_error_set(err, MN_ERR_CORRUPT,
                      "cannot import \"%s\": not an llm.c fp32 checkpoint (magic %d, version %d)",
                      file, hd[0], hd[1]);
    goto out;
  }
  gpt_config c = {.max_seq_len = hd[2],
                  .vocab_size = hd[3],
                  .n_layer = hd[4],
                  .n_head = hd[5],
                  .n_embd = hd[6],
                  .padded_vocab = hd[7]};
  mn_error e2;
  if (gpt_config_check(&c, &e2) != MN_OK) {
    rc = mn_error_set(err, MN_ERR_CORRUPT, "cannot import \"%s\": %s", file, e2.msg);
    goto out;
  }
  /* the header's shape against the file's size before a model is sized by it (the check
   * bounded the shape: no wrap) */
  size_t need = 256 * 4 + gpt_num_params(&c) * 4;
  if (b.len != need) {
    rc = mn_error_set(err, MN_ERR_CORRUPT,
                      "cannot import \"%s\": %zu bytes, its header's model (%d layers of width "
                      "%d) needs %zu",
                      file, b.len, c.n_layer, c.n_embd, need);
    goto out;
  }
  if ((rc = gpt_create(&c, 1, 1, 0, kernels_cpu(), &m, err)) != MN_OK) goto out;
  /* llm.c stacks each tensor over the layers; ours interleaves layers */
  const float *src = (const float *)(const void *)(b.data + 256 * 4);
  float *p = gpt_params(m);
  size_t C = (size_t)c.n_embd, L = (size_t)c.n_layer;
  size_t head = (size_t)c.padded_vocab * C + (size_t)c.max_seq_len * C;
  memcpy(p, src, head * sizeof(float));
  src += head;
  static const size_t per[GPT_BLOCK_TENSORS][2] = {{1, 0}, {1, 0}, {3, 1}, {3, 0}, {1, 1}, {1, 0},
                                                   {1, 0}, {1, 0}, {4, 1}, {4, 0}, {1, 4}, {1, 0}};
  for (int t = 0; t < GPT_BLOCK_TENSORS; t++) {
    size_t count = per[t][0] * C * (per[t][1] ? per[t][1] * C : 1);
    for (size_t l = 0; l < L; l++) {
      char name[64];
      size_t shape[2], off;
      int ndim;
      gpt_tensor_info(&c, 2 + (int)l * GPT_BLOCK_TENSORS + t, name, shape, &ndim, &off);
      memcpy(p + off, src + l * count, count * sizeof(float));
    }
    src += L * count;
  }
  memcpy(p + gpt_block_offset(&c, c.n_layer), src, 2 * C * sizeof(float));
  ckpt_meta meta = {.step = 0};
  snprintf(meta.lineage, sizeof meta.lineage, "{\"kind\": \"import-llmc\"}");
  rc = ckpt_save(out, m, &meta, err);
out:
  gpt_destroy(m);
  mn_buf_fini(&b);
  return rc;
}
