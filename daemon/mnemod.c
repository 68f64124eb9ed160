/*
 * mnemod.c -- the daemon (DESIGN.md §1, §3, §8): leadership, the event loop, signals and
 * reloads.  The work is the modules': the job queue and its runner (jobs.h, runner.h: a
 * refresh or a promotion, step by step, with `mnemo` children), webhook delivery
 * (outbox.h) and report triage (triage.h), each of the last two a thread of its own, and
 * the console with /metrics (console.h: libmicrohttpd's threads, whether it leads or waits).
 *
 *   mnemod [--config FILE] [--db CONNINFO] [--version] [--help]
 *
 * Leadership: a session-level advisory lock taken on a dedicated connection.  The waiting
 * daemon's `SELECT pg_advisory_lock(...)` is sent asynchronously and simply completes the
 * moment the leader's session ends (its process killed, its connection dropped): no
 * polling, no lease to tune.  Leader-only work stops the moment the lock connection drops.
 *
 * One loop blocking in poll() on the lock connection, the work connection (LISTEN
 * mnemo_documents, mnemo_reports, mnemo_jobs, mnemo_outbox), a signal self-pipe (SIGCHLD
 * included: the runner's worker ended) and the runner's worker's stdout, with a timeout that
 * is the next firing of schedule.refresh, the runner's next deadline (heartbeat, step
 * timeout), the next due job or the safety poll, whichever comes first.  A lost database
 * is retried with jittered exponential backoff; nothing spins.  SIGTERM/SIGINT stop it
 * (exit 0), SIGHUP reloads the config: a new one is validated whole (the loader that
 * `mnemoctl config check` uses) before any of it is applied, so an invalid one changes
 * nothing; keys the table marks not reloadable keep their value (a warning names each that
 * changed); the leader's threads (webhooks, triage) are stopped and started again from the
 * new config, so webhooks added by a reload start and those removed stop.
 * systemd: READY=1 once started, STATUS= on each change of state, WATCHDOG=1 from the loop,
 * STOPPING=1.  The first SIGTERM asks a running worker to save and stop and gives its job
 * back; a second one kills the worker.
 */
#include "common/protocol.h"
#include "configs/config.h"
#include "daemon/console.h"
#include "daemon/daemon.h"
#include "daemon/jobs.h"
#include "daemon/outbox.h"
#include "daemon/runner.h"
#include "daemon/triage.h"
#include "migrations/migrations.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

/* "mnemod" in ASCII: the advisory lock of the leader, one per database */
#define LEADER_LOCK_KEY 0x6d6e656d6f64LL
#define SAFETY_POLL_MS  60000

static int sig_pipe[2] = {-1, -1};
static int poll_cap_ms = SAFETY_POLL_MS; /* half systemd's watchdog interval when it has one */

static void on_signal(int sig)
{
  int saved = errno;
  char c = (char)sig;
  if (write(sig_pipe[1], &c, 1) < 0) { /* the pipe is full: a signal is pending anyway */
  }
  errno = saved;
}

typedef struct daemon_state {
  const char *config_path, *db;
  mn_config cfg;
  bool have_cfg;
  mn_cron schedule;
  bool have_schedule;
  int64_t next_refresh; /* seconds since the epoch; valid when have_schedule */
  uint64_t rng;
  runner *run;     /* the job in hand */
  bool leading;    /* the leader's threads run (as the config asks) */
  outbox *hooks;   /* webhook delivery, while leader and webhooks.url is set */
  triager *triage; /* report triage, while leader */
  console *web;    /* the console and /metrics, when console.listen is set */
  int stop_asked;  /* SIGTERMs received */
} daemon_state;

static int64_t now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec;
}

/* next_config -- a validated config (file, then --db or $MNEMO_DB) and its schedule */
typedef struct next_config {
  mn_config cfg;
  mn_cron schedule;
  bool have_schedule;
  int64_t next_refresh;
} next_config;

/* load -- read and validate the config into *nc; on failure nothing needs freeing and err
 * names the file, line and column */
static mn_status load(const daemon_state *st, next_config *nc /* OUT */, mn_error *err)
{
  memset(nc, 0, sizeof *nc);
  mn_status rc = st->config_path ? mn_config_load_file(st->config_path, &nc->cfg, err)
                                 : mn_config_init(&nc->cfg, err);
  if (rc != MN_OK) return rc;
  if (!st->config_path && (rc = mn_config_adhoc(&nc->cfg, err)) != MN_OK) {
    mn_config_fini(&nc->cfg);
    return rc;
  }
  const char *env_db = getenv("MNEMO_DB");
  if (st->db)
    rc = mn_config_set_literal(&nc->cfg, "database.conninfo", st->db, "--db", err);
  else if (env_db && *env_db)
    rc = mn_config_set_literal(&nc->cfg, "database.conninfo", env_db, "MNEMO_DB", err);
  /* the loader checked the schedule already: this cannot fail on a config that loaded */
  nc->have_schedule = rc == MN_OK && *nc->cfg.schedule.refresh;
  if (nc->have_schedule) rc = mn_cron_parse(nc->cfg.schedule.refresh, &nc->schedule, err);
  if (rc == MN_OK && nc->have_schedule)
    rc = mn_cron_next(&nc->schedule, now_s(), &nc->next_refresh, err);
  if (rc != MN_OK) mn_config_fini(&nc->cfg);
  return rc;
}

/* apply -- make nc the daemon's config (st owns it now) */
static void apply(daemon_state *st, next_config *nc)
{
  if (st->have_cfg) mn_config_fini(&st->cfg);
  st->cfg = nc->cfg;
  st->have_cfg = true;
  st->schedule = nc->schedule;
  st->have_schedule = nc->have_schedule;
  st->next_refresh = nc->next_refresh;
  mn_config_apply_log(&st->cfg);
}

static void status(const char *what)
{
  sd_notifyf(0, "STATUS=%s", what);
}

enum { SIG_STOP = 1, SIG_RELOAD = 2, SIG_CHILD = 4 };

/* drain_signals -- what arrived: SIG_STOP, SIG_RELOAD, SIG_CHILD, or'ed */
static int drain_signals(void)
{
  char buf[16];
  int what = 0;
  ssize_t n;
  while ((n = read(sig_pipe[0], buf, sizeof buf)) > 0)
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] == SIGTERM || buf[i] == SIGINT)
        what |= SIG_STOP;
      else if (buf[i] == SIGHUP)
        what |= SIG_RELOAD;
      else if (buf[i] == SIGCHLD)
        what |= SIG_CHILD;
  return what;
}

/* start_workers -- the leader's threads, as st->cfg asks: webhook delivery when
 * webhooks.url is set, report triage always.  One that cannot start is logged and stays off
 * until the next reload or leadership. */
static void start_workers(daemon_state *st)
{
  mn_error err = {0};
  char worker[PATH_MAX];
  if (outbox_create(&st->cfg, &st->hooks, &err) != MN_OK)
    mn_log_error("webhooks are off: their thread would not start", &err);
  runner_worker_path(&st->cfg, worker, sizeof worker);
  if (triager_create(&st->cfg, worker, &st->triage, &err) != MN_OK)
    mn_log_error("report triage is off", &err);
}

static void stop_workers(daemon_state *st)
{
  outbox_destroy(st->hooks);
  st->hooks = NULL;
  triager_destroy(st->triage);
  st->triage = NULL;
}

/* reload -- SIGHUP: the new config whole, or nothing of it */
static void reload(daemon_state *st)
{
  mn_error err = {0};
  next_config nc;
  bool changed[MN_CONFIG_MAX_KEYS] = {false};
  if (load(st, &nc, &err) != MN_OK) {
    mn_log_error("config reload failed; the old config stays", &err);
    return;
  }
  if (mn_config_keep_fixed(&nc.cfg, &st->cfg, changed, &err) != MN_OK) {
    mn_config_fini(&nc.cfg);
    mn_log_error("config reload failed; the old config stays", &err);
    return;
  }
  size_t n;
  const mn_config_key *keys = mn_config_keys(&n);
  for (size_t i = 0; i < n; i++)
    if (changed[i])
      mn_log(MN_LOG_WARN, "config key not reloaded: it keeps its value until a restart",
             MN_KV_S("key", keys[i].key));
  apply(st, &nc);
  runner_set_config(st->run, &st->cfg);
  if (st->leading) { /* the threads take the new webhooks.* and triage.*, or stop */
    stop_workers(st);
    start_workers(st);
  }
  mn_log(MN_LOG_INFO, "config reloaded", MN_KV_S("schedule", st->cfg.schedule.refresh),
         MN_KV_I("next_refresh", st->have_schedule ? st->next_refresh : 0),
         MN_KV_B("webhooks", st->hooks != NULL), MN_KV_B("triage", st->triage != NULL));
}

/* backoff -- wait 0.5 s * 2^attempt, at most 30 s, with full jitter, woken by signals;
 * true when the daemon must stop */
static bool backoff(daemon_state *st, int attempt)
{
  int64_t cap = 500LL << (attempt < 6 ? attempt : 6);
  if (cap > 30000) cap = 30000;
  int ms = (int)(mn_splitmix64(&st->rng) % (uint64_t)cap) + 1;
  struct pollfd p = {.fd = sig_pipe[0], .events = POLLIN};
  if (poll(&p, 1, ms) <= 0) return false;
  int s = drain_signals();
  if (s & SIG_RELOAD) reload(st);
  return s & SIG_STOP;
}

/* what pg_stat_activity shows of mnemod: "mnemod pid N on HOST" (mnemoctl status reads it) */
static char app_name[64] = "mnemod";

static PGconn *connect_db(daemon_state *st, mn_error *err)
{
  PGconn *c = NULL;
  db_options opt = {.conninfo = st->cfg.database.conninfo,
                    .application_name = app_name,
                    .connect_timeout_s = st->cfg.database.connect_timeout_s};
  return db_connect(&opt, &c, err) == MN_OK ? c : NULL;
}

/* request_refresh -- queue a refresh (or find the one in flight) */
static void request_refresh(PGconn *work, const char *why)
{
  mn_error err = {0};
  int64_t job = 0;
  if (jobs_request_refresh(work, why, &job, &err) != MN_OK)
    mn_log_error("could not queue a refresh", &err);
  else
    mn_log(MN_LOG_INFO, "refresh queued", MN_KV_I("job", job), MN_KV_S("why", why));
}

/* check_fresh -- queue a refresh when enough fresh data arrived since the last one */
static void check_fresh(daemon_state *st, PGconn *work)
{
  mn_error err = {0};
  bool due = false;
  char why[160];
  if (jobs_fresh_due(work, &st->cfg, &due, why, sizeof why, &err) != MN_OK)
    mn_log_error("could not measure the fresh data", &err);
  else if (due)
    request_refresh(work, why);
}

/* take_notifies -- act on the notifications libpq holds; true when one concerns the job
 * runner */
static bool take_notifies(daemon_state *st, PGconn *work)
{
  PGnotify *nt;
  bool docs = false, jobs = false;
  while ((nt = PQnotifies(work)) != NULL) {
    mn_log(strcmp(nt->relname, "mnemo_outbox") == 0 ? MN_LOG_DEBUG : MN_LOG_INFO, "wake",
           MN_KV_S("channel", nt->relname), MN_KV_S("payload", nt->extra));
    if (strcmp(nt->relname, "mnemo_jobs") == 0) jobs = true;
    if (strcmp(nt->relname, "mnemo_outbox") == 0) outbox_wake(st->hooks);
    if (strcmp(nt->relname, "mnemo_documents") == 0) docs = true;
    PQfreemem(nt);
  }
  if (docs && !st->stop_asked) check_fresh(st, work);
  if (jobs) runner_notify(st->run);
  return jobs;
}

/* schema_ready -- whether the database holds exactly this mnemod's migrations; when not, the
 * error is logged and leadership waits (30 s, or a signal): a job would fail on a table or
 * a function that is not there yet -- after a promotion committed, say.  *stop: SIGTERM. */
static bool schema_ready(daemon_state *st, PGconn *work, bool *stop)
{
  mn_error err = {0};
  migration_row *rows = NULL;
  size_t n = 0, off = 0;
  const char *first = "";
  if (migrate_status(work, mn_migrations, mn_migrations_count, &rows, &n, &err) != MN_OK) {
    mn_log_error("could not read the database's migrations", &err);
    off = 1;
  }
  for (size_t i = 0; i < n; i++)
    if (rows[i].state != MIGRATION_APPLIED && !off++) first = rows[i].name;
  if (off && n)
    mn_log(MN_LOG_ERROR, "the database's schema is not this mnemod's: not leading",
           MN_KV_I("migrations_not_applied_or_unknown", (int64_t)off), MN_KV_S("first", first),
           MN_KV_S("fix", "mnemoctl migrate (an administrator), or the mnemod of that schema"));
  free(rows);
  if (!off) return true;
  status("standby: the database needs mnemoctl migrate");
  struct pollfd p = {.fd = sig_pipe[0], .events = POLLIN};
  if (poll(&p, 1, 30000) > 0) {
    int s = drain_signals();
    if (s & SIG_RELOAD) reload(st);
    *stop = s & SIG_STOP;
  }
  return false;
}

/* lead -- the leader's loop; returns 1 to stop the daemon, 0 when leadership was lost */
static int lead(daemon_state *st, PGconn *lock)
{
  mn_error err = {0};
  bool stop = false;
  PGconn *work = connect_db(st, &err);
  if (work && !schema_ready(st, work, &stop)) {
    PQfinish(work);
    return stop ? 1 : 0;
  }
  if (!work || db_exec(work,
                       "SET idle_in_transaction_session_timeout = '60s';"
                       "LISTEN mnemo_documents; LISTEN mnemo_reports; LISTEN mnemo_jobs;"
                       "LISTEN mnemo_outbox",
                       &err) != MN_OK) {
    mn_log_error("the work connection failed; giving up leadership", &err);
    PQfinish(work);
    return 0;
  }
  mn_log(MN_LOG_INFO, "leader", MN_KV_I("pid", getpid()));
  console_set_role(st->web, CONSOLE_LEADER);
  status("leader: waiting for work");
  st->leading = true;
  start_workers(st);
  /* what arrived while no daemon listened is found by a query, not by a notification */
  mn_log(MN_LOG_INFO, "catch-up", MN_KV_S("why", "leadership taken"));
  check_fresh(st, work);
  int code = 0;
  bool readable = false;
  double runner_pause = 0; /* after a failure the runner waits (monotonic ms) */
  for (;;) {
    if (mn_monotonic_ms() >= runner_pause && runner_tick(st->run, work, readable, &err) != MN_OK) {
      if (PQstatus(work) != CONNECTION_OK) {
        mn_log_error("the job runner lost the database", &err);
        break;
      }
      /* a statement failed on a live connection (privileges, a bug): not a reason to give
       * up leadership, nor to retry at once */
      mn_log_error("the job runner failed; retrying in 10 s", &err);
      runner_pause = mn_monotonic_ms() + 10000;
    }
    readable = false;
    /* what our own statements brought back with their results (a job we queued, an event
     * we wrote): libpq holds it already, so the socket will not say so */
    bool woke = take_notifies(st, work);
    if (st->stop_asked && !runner_busy(st->run)) {
      code = 1;
      break;
    }
    status(runner_busy(st->run) ? "leader: running a job" : "leader: waiting for work");
    int timeout = poll_cap_ms;
    if (st->have_schedule) {
      int64_t left = (st->next_refresh - now_s()) * 1000;
      if (left < timeout) timeout = left < 0 ? 0 : (int)left;
    }
    int rt = runner_timeout_ms(st->run);
    if (rt >= 0 && rt < timeout) timeout = rt;
    int64_t due = -1;
    if (!runner_busy(st->run) && !st->stop_asked && jobs_wait_ms(work, &due, &err) != MN_OK) {
      mn_log_error("the work connection failed", &err);
      break;
    }
    if (due >= 0 && due + 1 < timeout) timeout = (int)due + 1;
    if (woke) timeout = 0;
    double pause = runner_pause - mn_monotonic_ms();
    if (pause > 0 && timeout < pause) timeout = (int)pause + 1; /* due jobs wait out the pause */
    struct pollfd fds[4] = {{.fd = PQsocket(lock), .events = POLLIN},
                            {.fd = PQsocket(work), .events = POLLIN},
                            {.fd = sig_pipe[0], .events = POLLIN},
                            {.fd = runner_fd(st->run), .events = POLLIN}};
    int n = poll(fds, fds[3].fd >= 0 ? 4 : 3, timeout);
    sd_notify(0, "WATCHDOG=1");
    if (n < 0 && errno != EINTR) {
      mn_log(MN_LOG_ERROR, "poll failed", MN_KV_S("error", strerror(errno)));
      break;
    }
    if (n > 0 && fds[3].fd >= 0 && fds[3].revents) readable = true;
    if (n > 0 && fds[2].revents) {
      int s = drain_signals();
      if (s & SIG_CHILD) runner_child_exited(st->run);
      if (s & SIG_STOP) {
        st->stop_asked++;
        /* the first asks the worker to save and waits for it; the second does not wait */
        runner_stop(st->run, work, st->stop_asked == 1);
      }
      if (s & SIG_RELOAD) reload(st);
    }
    if (fds[0].revents &&
        (!PQconsumeInput(lock) || PQstatus(lock) != CONNECTION_OK)) { /* the lock is gone */
      mn_log(MN_LOG_WARN, "leadership lost: the lock connection dropped",
             MN_KV_S("error", PQerrorMessage(lock)));
      break;
    }
    if (fds[1].revents) {
      if (!PQconsumeInput(work) || PQstatus(work) != CONNECTION_OK) {
        mn_log(MN_LOG_WARN, "the work connection dropped", MN_KV_S("error", PQerrorMessage(work)));
        break; /* leadership is given up and taken again: LISTEN and catch-up come with it */
      }
      take_notifies(st, work);
    }
    if (st->have_schedule && now_s() >= st->next_refresh) {
      mn_log(MN_LOG_INFO, "refresh due", MN_KV_S("schedule", st->cfg.schedule.refresh),
             MN_KV_I("at", st->next_refresh));
      if (!st->stop_asked) request_refresh(work, "schedule");
      if (mn_cron_next(&st->schedule, now_s(), &st->next_refresh, &err) != MN_OK) {
        mn_log_error("the schedule fires no more", &err);
        st->have_schedule = false;
      }
    }
  }
  if (st->stop_asked)
    runner_stop(st->run, work, false);
  else
    runner_abandon(st->run);
  stop_workers(st);
  st->leading = false;
  console_set_role(st->web, CONSOLE_STARTING);
  PQfinish(work);
  return code;
}

/* run -- lead or wait until stopped: 0; 1 when the configuration names no usable database */
static int run(daemon_state *st)
{
  int attempt = 0;
  sd_notify(0, "READY=1");
  for (;;) {
    mn_error err = {0};
    status("connecting");
    PGconn *lock = connect_db(st, &err);
    if (!lock && err.code == MN_ERR_CONFIG) { /* no database given, or not one libpq reads */
      mn_log_error("the configuration names no database mnemod can use", &err);
      fprintf(stderr, "mnemod: %s\n", err.msg);
      return 1;
    }
    if (!lock) {
      mn_log_error("database unreachable; retrying", &err);
      if (backoff(st, attempt++)) return 0;
      continue;
    }
    /* blocks in the server until the lock is free: the other daemon's session ended */
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)", LEADER_LOCK_KEY);
    if (!PQsendQuery(lock, sql)) {
      mn_log(MN_LOG_ERROR, "could not ask for leadership", MN_KV_S("error", PQerrorMessage(lock)));
      PQfinish(lock);
      if (backoff(st, attempt++)) return 0;
      continue;
    }
    attempt = 0;
    console_set_role(st->web, CONSOLE_STANDBY);
    bool logged = false, leader = false, stop = false;
    while (!leader && !stop) {
      struct pollfd fds[2] = {{.fd = PQsocket(lock), .events = POLLIN},
                              {.fd = sig_pipe[0], .events = POLLIN}};
      int n = poll(fds, 2, logged ? poll_cap_ms : 200);
      sd_notify(0, "WATCHDOG=1");
      if (n == 0 && !logged) {
        mn_log(MN_LOG_INFO, "waiting for leadership", MN_KV_S("why", "another mnemod leads"));
        status("standby: another mnemod leads");
        console_set_role(st->web, CONSOLE_STANDBY);
        logged = true;
      }
      if (n > 0 && fds[1].revents) {
        int s = drain_signals();
        if (s & SIG_STOP) stop = true;
        if (s & SIG_RELOAD) reload(st);
      }
      if (n > 0 && fds[0].revents) {
        if (!PQconsumeInput(lock)) break;
        if (PQisBusy(lock)) continue;
        PGresult *r = PQgetResult(lock);
        leader = PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!leader)
          mn_log(MN_LOG_ERROR, "leadership query failed",
                 MN_KV_S("error", PQresultErrorMessage(r)));
        PQclear(r);
        while ((r = PQgetResult(lock)) != NULL)
          PQclear(r);
        if (!leader) break;
      }
    }
    int code = leader ? lead(st, lock) : stop ? 1 : 0;
    PQfinish(lock); /* the session ends: the lock is released */
    if (code == 1 || stop) return 0;
    if (backoff(st, attempt++)) return 0;
  }
}

int main(int argc, char **argv)
{
  daemon_state st = {.rng = (uint64_t)getpid() ^ (uint64_t)time(NULL)};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      st.config_path = argv[++i];
    } else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
      st.db = argv[++i];
    } else if (strcmp(argv[i], "--version") == 0) {
      printf("mnemod %s\n", MNEMO_VERSION);
      return MN_EXIT_OK;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: mnemod [--config FILE] [--db CONNINFO] [--version] [-h|--help]\n\n"
             "the mnemo daemon: one leader per database (the others wait), woken by new\n"
             "documents and reports, refreshes on schedule.refresh (UTC).  SIGTERM stops it,\n"
             "SIGHUP reloads the config.  Logs go to stderr (log.level, log.format).\n"
             "The config: --config, else $MNEMO_CONFIG, ./mnemo.yaml,\n"
             "$XDG_CONFIG_HOME/mnemo/mnemo.yaml (~/.config), /etc/mnemo/mnemo.yaml.\n"
             "\nexit status: 0 stopped by SIGTERM or SIGINT, 1 failure, 2 usage error, 78 a\n"
             "configuration that cannot be used (a restart will not help)\n");
      return MN_EXIT_OK;
    } else {
      fprintf(stderr, "mnemod: unknown or incomplete option \"%s\"\nTry \"mnemod --help\".\n",
              argv[i]);
      return MN_EXIT_USAGE;
    }
  }
  static char found[4096]; /* a reload reads it again */
  if (!st.config_path) st.config_path = mn_config_find(found, sizeof found);
  mn_error err = {0};
  next_config nc;
  if (load(&st, &nc, &err) != MN_OK) { /* a file missing, unreadable or refused: the same */
    fprintf(stderr, "mnemod: %s\n", err.msg);
    return MN_EXIT_CONFIG;
  }
  apply(&st, &nc);
  /* close-on-exec: the workers mnemod starts do not inherit it */
  if (pipe(sig_pipe) != 0 || fcntl(sig_pipe[0], F_SETFL, O_NONBLOCK) != 0 ||
      fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK) != 0 ||
      fcntl(sig_pipe[0], F_SETFD, FD_CLOEXEC) != 0 ||
      fcntl(sig_pipe[1], F_SETFD, FD_CLOEXEC) != 0) {
    fprintf(stderr, "mnemod: could not create the signal pipe: %s\n", strerror(errno));
    return MN_EXIT_FAIL;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sigaction(SIGCHLD, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) { /* before any thread */
    fprintf(stderr, "mnemod: libcurl would not initialise\n");
    return MN_EXIT_FAIL;
  }
  char host[128] = "", owner[200];
  gethostname(host, sizeof host - 1);
  snprintf(app_name, sizeof app_name, "mnemod pid %d on %.30s", (int)getpid(), host);
  snprintf(owner, sizeof owner, "mnemod@%s:%d:%llx", host, (int)getpid(),
           (unsigned long long)(mn_splitmix64(&st.rng) & 0xffffff));
  if (runner_create(owner, &st.run, &err) != MN_OK) {
    fprintf(stderr, "mnemod: %s\n", err.msg);
    return MN_EXIT_FAIL;
  }
  runner_set_config(st.run, &st.cfg);
  if (console_create(&st.cfg, &st.web, &err) != MN_OK) {
    fprintf(stderr, "mnemod: %s\n", err.msg);
    runner_destroy(st.run);
    return err.code == MN_ERR_CONFIG ? MN_EXIT_CONFIG : MN_EXIT_FAIL;
  }
  uint64_t wd_usec = 0;
  if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec / 2000 < (uint64_t)poll_cap_ms)
    poll_cap_ms = wd_usec / 2000 > 0 ? (int)(wd_usec / 2000) : 1;
  mn_log(MN_LOG_INFO, "mnemod started", MN_KV_I("pid", getpid()),
         MN_KV_S("schedule", st.cfg.schedule.refresh));
  int failed = run(&st);
  sd_notify(0, "STOPPING=1");
  console_destroy(st.web); /* its requests end first (statement_timeout bounds them) */
  mn_log(MN_LOG_INFO, "mnemod stopped", MN_KV_I("pid", getpid()));
  runner_destroy(st.run);
  curl_global_cleanup();
  mn_config_fini(&st.cfg);
  return failed ? MN_EXIT_CONFIG : MN_EXIT_OK; /* run fails only on a config naming no database */
}
