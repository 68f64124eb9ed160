/*
 * ctl_users.c -- mnemoctl's logins: who may act on mnemo is a PostgreSQL login that is a
 * member of one of migration 0001's roles (mnemo_operator, mnemo_reporter, mnemo_ingest,
 * mnemo_daemon).  `user add` makes one (with a password for the console, sent to the
 * server only as a SCRAM verifier computed here), `user list` shows them, `user remove`
 * drops one.  Run by an administrator's login (CREATEROLE); the database refuses anyone
 * else.  docs/console.md says why people log in as themselves.
 */
#include "daemon/ctl/ctl_int.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static const char *const ROLES[] = {"operator", "reporter", "ingest", "daemon", NULL};

/* the members of mnemo's roles: login, roles, whether it may log in, and a guard against
 * dropping anything else */
#define USERS_SQL                                                                                  \
  "SELECT r.rolname, string_agg(substr(g.rolname, 7), ',' ORDER BY g.rolname), r.rolcanlogin,"     \
  " r.rolsuper OR r.rolcreaterole OR r.rolbypassrls OR r.rolname = session_user"                   \
  "  FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid"                                   \
  "  JOIN pg_roles g ON g.oid = m.roleid"                                                          \
  " WHERE g.rolname IN ('mnemo_operator', 'mnemo_reporter', 'mnemo_ingest', 'mnemo_daemon')"       \
  "   AND ($1::text IS NULL OR r.rolname = $1)"                                                    \
  " GROUP BY r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolbypassrls ORDER BY 1"

/* the terminal as it was before the password prompt, put back by a signal too */
static struct termios saved_tty;

static void restore_tty(int sig)
{
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* read_password -- one line from standard input (echo off on a terminal, and back on
 * whatever ends the prompt: Enter, Ctrl-C, a kill) */
static int read_password(char *out, size_t cap)
{
  bool tty = isatty(STDIN_FILENO);
  struct sigaction sa = {.sa_handler = restore_tty}, old_int, old_term, old_tstp;
  if (tty) {
    fprintf(stderr, "password: ");
    tcgetattr(STDIN_FILENO, &saved_tty);
    struct termios quiet = saved_tty;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGTSTP, &sa, &old_tstp);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  bool got = fgets(out, (int)cap, stdin) != NULL;
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGTSTP, &old_tstp, NULL);
    fprintf(stderr, "\n");
  }
  if (!got) return ctl_usage("--password-stdin: no password on standard input");
  size_t n = strcspn(out, "\r\n");
  if (out[n] == '\0' && n == cap - 1)
    return ctl_usage("--password-stdin: the password is too long");
  out[n] = '\0';
  if (n < 8) return ctl_usage("--password-stdin: a password of at least 8 characters, please");
  return 0;
}

static int cmd_user_add(ctl *c, int argc, char **argv)
{
  if (argc != 1)
    return ctl_usage("user add takes one login name; see \"mnemoctl user add --help\"");
  const char *name = argv[0];
  if (ctl_user_value("NAME", name) != 0) return MN_EXIT_USAGE;
  if (strlen(name) > 63) /* PostgreSQL would cut it (NAMEDATALEN) and make another name */
    return ctl_usage("a login name has at most 63 bytes (\"%s\" has %zu)", ctl_text(name, 40),
                     strlen(name));
  int k = 0;
  while (ROLES[k] && strcmp(ROLES[k], c->a.role) != 0)
    k++;
  const char *near = ROLES[k] ? NULL : mn_nearest(c->a.role, ROLES, 4);
  if (!ROLES[k])
    return ctl_usage("--role must be operator, reporter, ingest or daemon, got \"%s\"%s%s%s",
                     c->a.role, near ? "; did you mean \"" : "", near ? near : "",
                     near ? "\"?" : "");
  char pw[1024] = "";
  if (c->a.password_stdin && read_password(pw, sizeof pw) != 0) return MN_EXIT_USAGE;
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  if (ctl_connect(c, &conn, &err) != MN_OK) return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  char *ident = PQescapeIdentifier(conn, name, strlen(name));
  /* SCRAM whatever the server's password_encryption says: the password never leaves */
  char *verifier = *pw ? PQencryptPasswordConn(conn, pw, name, "scram-sha-256") : NULL;
  OPENSSL_cleanse(pw, sizeof pw);
  char *lit = verifier ? PQescapeLiteral(conn, verifier, strlen(verifier)) : NULL;
  int code = MN_EXIT_FAIL;
  if (!ident || (c->a.password_stdin && !lit)) {
    db_error(conn, NULL, "could not prepare the login", &err);
  } else {
    char sql[2048];
    int n = snprintf(sql, sizeof sql, "CREATE ROLE %s LOGIN%s%s IN ROLE mnemo_%s", ident,
                     lit ? " PASSWORD " : "", lit ? lit : "", ROLES[k]);
    if (n < 0 || (size_t)n >= sizeof sql) {
      mn_error_set(&err, MN_ERR_INPUT, "the login name is too long");
    } else {
      /* the statement holds the verifier: the error names what failed, never the SQL */
      PGresult *r = PQexec(conn, sql);
      if (PQresultStatus(r) == PGRES_COMMAND_OK)
        code = MN_EXIT_OK;
      else
        db_error(conn, r, "could not create the login", &err);
      PQclear(r);
    }
    OPENSSL_cleanse(sql, sizeof sql);
  }
  PQfreemem(ident);
  if (verifier) OPENSSL_cleanse(verifier, strlen(verifier));
  if (lit) OPENSSL_cleanse(lit, strlen(lit));
  PQfreemem(verifier);
  PQfreemem(lit);
  if (code == MN_EXIT_OK) {
    if (c->json)
      ctl_print_json(json_pack("{s:s, s:s, s:b}", "user", name, "role", ROLES[k], "password",
                               c->a.password_stdin));
    else
      printf("login %s added as %s%s\n", ctl_text(name, 0), ROLES[k],
             c->a.password_stdin ? ", with a password"
                                 : " (no password: set one to use the console)");
  }
  return ctl_done(conn, res, &err, code);
}

static int cmd_user_list(ctl *c, int argc, char **argv)
{
  (void)argv;
  if (argc != 0) return ctl_usage("user list takes no arguments");
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  const char *p[] = {NULL};
  if (ctl_connect(c, &conn, &err) != MN_OK ||
      db_query(conn, USERS_SQL, 1, p, &res, "could not list the logins", &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  json_t *arr = json_array();
  if (!c->json) printf("%-24s %-30s %s\n", "login", "roles", "may log in");
  for (int i = 0; i < PQntuples(res); i++) {
    bool login = PQgetvalue(res, i, 2)[0] == 't';
    if (c->json)
      json_array_append_new(arr, json_pack("{s:s, s:s, s:b}", "user", PQgetvalue(res, i, 0),
                                           "roles", PQgetvalue(res, i, 1), "login", login));
    else
      printf("%s %-30s %s\n", ctl_cell(PQgetvalue(res, i, 0), 24), PQgetvalue(res, i, 1),
             login ? "yes" : "no");
  }
  if (c->json)
    ctl_print_json(arr);
  else
    json_decref(arr);
  if (!c->json && PQntuples(res) == 0) printf("(none: mnemoctl user add NAME --role operator)\n");
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

static int cmd_user_remove(ctl *c, int argc, char **argv)
{
  if (argc != 1) return ctl_usage("user remove takes one login name");
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  const char *p[] = {argv[0]};
  if (ctl_connect(c, &conn, &err) != MN_OK ||
      db_query(conn, USERS_SQL, 1, p, &res, "could not look up the login", &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  if (PQntuples(res) != 1) {
    mn_error_set(&err, MN_ERR_INPUT, "\"%s\" is no member of mnemo's roles: not removed",
                 ctl_text(argv[0], 0));
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  }
  if (PQgetvalue(res, 0, 3)[0] == 't') { /* an administrator, or the one asking */
    mn_error_set(&err, MN_ERR_INPUT,
                 "\"%s\" is an administrator (superuser, CREATEROLE or BYPASSRLS) or your own "
                 "login: not removed here",
                 ctl_text(argv[0], 0));
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  }
  char *ident = PQescapeIdentifier(conn, argv[0], strlen(argv[0]));
  char sql[512];
  snprintf(sql, sizeof sql, "DROP ROLE %s", ident ? ident : "\"\"");
  PQfreemem(ident);
  if (db_exec(conn, sql, &err) != MN_OK) return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  if (c->json)
    ctl_print_json(json_pack("{s:s, s:b}", "user", argv[0], "removed", 1));
  else
    printf("login %s removed (what it did stays in the audit log)\n", ctl_text(argv[0], 0));
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

static const ctl_opt add_opts[] = {
    CTL_NEED("role", role, "ROLE", "operator, reporter, ingest or daemon"),
    CTL_FLAG("password-stdin", password_stdin,
             "read the password from standard input (not echoed on a terminal)"),
    {0}};

const ctl_command ctl_users_commands[] = {
    {"user", "add", cmd_user_add, "NAME", "Add a login in one of mnemo's roles (administrators).",
     "Creates the PostgreSQL login NAME as a member of mnemo_ROLE: operator (approves,\n"
     "rejects, triages, rolls back), reporter (reports only), ingest (documents only) or\n"
     "daemon (runs jobs; never approves).  With --password-stdin it gets a password, which\n"
     "the console needs: only its SCRAM verifier, computed here, reaches the server.\n",
     add_opts},
    {"user", "list", cmd_user_list, "", "The logins in mnemo's roles.", "", NULL},
    {"user", "remove", cmd_user_remove, "NAME", "Drop a login of mnemo's roles (administrators).",
     "Only a member of mnemo's roles is dropped; its decisions stay in the audit log under\n"
     "its name.\n",
     NULL},
};
const size_t ctl_users_ncommands = sizeof ctl_users_commands / sizeof ctl_users_commands[0];
