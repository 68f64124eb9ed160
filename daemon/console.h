/*
 * console.h -- mnemod's HTTP side: the operators' console, /metrics, /healthz and /readyz
 * (DESIGN.md §8, docs/console.md).  libmicrohttpd serves them from a pool of threads of its
 * own, on console.listen, beside the daemon's loop and whether it leads or waits.
 *
 * Each person logs in with their own PostgreSQL login and password; the console opens a
 * connection as that login and does everything of that session through it, so the
 * database decides who may read and do what (session_user is who approved).  The console
 * adds sessions (cookies HttpOnly, SameSite=Strict, Secure under TLS), a CSRF token on
 * every form, a limit on failed logins and escaping -- never permissions of its own.
 * /metrics and /readyz use a connection of the daemon's own (database.conninfo).
 *
 * A header of mnemod's own (daemon.h says which headers of daemon/ are whose).
 */
#ifndef MNEMO_CONSOLE_H
#define MNEMO_CONSOLE_H

#include "configs/config.h"
#include "daemon/daemon.h"

typedef struct console console;

typedef enum {
  CONSOLE_STARTING = 0, /* not connected yet */
  CONSOLE_STANDBY,      /* waiting for leadership */
  CONSOLE_LEADER,
} console_role;

/*
 * console_create -- listen on cfg->console.listen and serve.  Copies what it needs of cfg.
 * console.listen empty: *out is NULL and MN_OK (no HTTP at all).  A port that cannot be
 * bound, a certificate that cannot be read: an error naming it, *out NULL.
 */
MN_NODISCARD mn_status console_create(const mn_config *cfg, console **out /* OUT */, mn_error *err);
/* console_port -- the port it listens on (console.listen with port 0 gets any free one) */
int console_port(const console *c);
/* console_set_role -- what /readyz and /metrics say this daemon is (NULL-safe, any thread) */
void console_set_role(console *c, console_role role);
/* console_destroy -- stop serving, close every session's connection (NULL-safe) */
void console_destroy(console *c);

#endif /* MNEMO_CONSOLE_H */
