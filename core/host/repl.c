/* repl.c — the interactive loop of `hrm`: readline editing, persistent history, tab
 * completion, multi-line input, and Ctrl-C.
 *
 * The C side only reads lines and signals; the Lua module `hrm.repl` decides what a line
 * means (`eval` returns "incomplete" for unfinished statements, prints values and errors)
 * and what completes (`complete`). History lives in $HRM_HISTORY or ~/.hrm_history.
 *
 * Ctrl-C: the SIGINT handler only records the request (a flag, the core's interrupt request and,
 * while Lua runs, a Lua hook; nothing that allocates or touches readline). At the prompt the key
 * reader sees the flag and ends the line, which the loop then drops together with any pending
 * continuation lines. In the REPL a second Ctrl-C never ends the process; in a script it does
 * (as in lua.c), since compiled loops never run the hook. In the REPL only the typed chunk is
 * interrupted: hrm.repl._interruptible(false) ends that window as soon as the chunk fails or
 * returns, so a Ctrl-C during the error report or the printing of results is dropped.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <lauxlib.h>
#include <readline/history.h>
#include <readline/readline.h>

#include "host.h"
#include "hrm.h"

static lua_State *interrupt_state;
static volatile sig_atomic_t interrupt_pending; /* Ctrl-C seen and not yet acted on */
static volatile sig_atomic_t in_session;        /* inside the REPL: Ctrl-C never ends the process */
static volatile sig_atomic_t chunk_running = 1; /* Lua code that Ctrl-C may stop is running */

static void interrupt_hook(lua_State *L, lua_Debug *ar) {
   (void)ar;
   lua_sethook(L, NULL, 0, 0);
   if (chunk_running) luaL_error(L, "interrupted");
}

/* hrm.repl._interruptible(on): whether a Ctrl-C now stops the running Lua code (the REPL opens
 * this window around each typed chunk only). */
static int set_interruptible(lua_State *L) {
   sigset_t block, old;
   sigemptyset(&block);
   sigaddset(&block, SIGINT);
   sigprocmask(SIG_BLOCK, &block, &old);
   chunk_running = lua_toboolean(L, 1);
   if (!chunk_running && lua_gethook(L) == interrupt_hook) lua_sethook(L, NULL, 0, 0);
   sigprocmask(SIG_SETMASK, &old, NULL);
   return 0;
}

static void on_sigint(int sig);

static void install_sigint(void (*handler)(int)) {
   struct sigaction sa;
   memset(&sa, 0, sizeof sa);
   sa.sa_handler = handler;
   sigemptyset(&sa.sa_mask);
   sa.sa_flags = SA_RESTART; /* file writes of a stopping training run are not cut short */
   sigaction(SIGINT, &sa, NULL);
}

static void on_sigint(int sig) {
   (void)sig;
   interrupt_pending = 1;
   if (!interrupt_state) return; /* at the prompt: the key reader acts on the flag */
   if (!chunk_running) return;   /* the REPL's own code between chunks: dropped after it */
   if (hrm_interrupt_deferred()) { /* a loop will stop cleanly at its next step */
      hrm_interrupt_request();
      return;
   }
   /* The hook stops interpreted code at its next call, return or instruction (the REPL runs
    * what is typed uncompiled, so a loop typed there stops too). The request is also recorded:
    * when a pcall swallows the "interrupted" error, a training loop started later in the same
    * chunk still stops (and saves) at its first step; hrm_host_docall drops a request that
    * nothing took. Outside the REPL a second Ctrl-C ends the process (compiled script loops
    * never check the hook). lua_sethook only stores the hook, as lua.c relies on. */
   hrm_interrupt_request();
   if (!in_session) signal(SIGINT, SIG_DFL);
   lua_sethook(interrupt_state, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

void hrm_host_interrupts(lua_State *L, int on) {
   sigset_t block, old;
   sigemptyset(&block);
   sigaddset(&block, SIGINT);
   sigprocmask(SIG_BLOCK, &block, &old); /* the handler sees the state before or after, whole */
   interrupt_state = on ? L : NULL;
   if (!on && lua_gethook(L) == interrupt_hook) lua_sethook(L, NULL, 0, 0); /* a late Ctrl-C's */
   if (on || in_session) install_sigint(on_sigint);
   else signal(SIGINT, SIG_DFL);
   sigprocmask(SIG_SETMASK, &old, NULL);
}

/* ---- reading keys: Ctrl-C ends the line being typed ------------------------------------------- */

static int line_interrupted; /* the line readline returned was ended by Ctrl-C */

/* readline's key reader. SIGINT is blocked between the flag test and the wait, and pselect
 * unblocks it atomically, so a Ctrl-C is never lost between the two. */
static int read_key(FILE *in) {
   int fd = fileno(in);
   sigset_t block, old;
   sigemptyset(&block);
   sigaddset(&block, SIGINT);
   for (;;) {
      sigprocmask(SIG_BLOCK, &block, &old);
      if (interrupt_pending) {
         interrupt_pending = 0;
         sigprocmask(SIG_SETMASK, &old, NULL);
         line_interrupted = 1;
         rl_point = rl_end;
         rl_insert_text("^C");
         rl_redisplay();
         return '\n'; /* accept the line; the loop drops it */
      }
      fd_set fds;
      FD_ZERO(&fds);
      FD_SET(fd, &fds);
      int ready = pselect(fd + 1, &fds, NULL, NULL, NULL, &old);
      sigprocmask(SIG_SETMASK, &old, NULL);
      if (ready < 0) {
         if (errno == EINTR) {
            rl_check_signals(); /* e.g. a window resize readline caught */
            continue;
         }
         return EOF;
      }
      unsigned char c;
      ssize_t n = read(fd, &c, 1);
      if (n == 1) return c;
      if (n == 0 || errno != EINTR) return EOF;
   }
}

/* ---- completion through hrm.repl.complete(text) ---------------------------------------------- */

static lua_State *completion_state;
static int completion_ref = LUA_NOREF;

static char *completion_generator(const char *text, int state) {
   lua_State *L = completion_state;
   static int index, count;
   if (state == 0) {
      if (completion_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, completion_ref);
      completion_ref = LUA_NOREF;
      count = 0;
      index = 0;
      lua_getglobal(L, "hrm");
      lua_getfield(L, -1, "repl");
      lua_getfield(L, -1, "complete");
      lua_pushstring(L, text);
      if (lua_pcall(L, 1, 1, 0) != 0 || !lua_istable(L, -1)) {
         lua_pop(L, 3);
         return NULL;
      }
      count = (int)lua_objlen(L, -1);
      completion_ref = luaL_ref(L, LUA_REGISTRYINDEX);
      lua_pop(L, 2);
   }
   if (index >= count) return NULL;
   lua_rawgeti(L, LUA_REGISTRYINDEX, completion_ref);
   lua_rawgeti(L, -1, ++index);
   const char *s = lua_tostring(L, -1);
   char *match = s ? strdup(s) : NULL;
   lua_pop(L, 2);
   return match;
}

static char **complete(const char *text, int start, int end) {
   (void)start;
   (void)end;
   rl_attempted_completion_over = 1; /* never fall back to file names */
   rl_completion_append_character = '\0';
   return rl_completion_matches(text, completion_generator);
}

/* ---- the loop ----------------------------------------------------------------------------------------- */

static void history_path(char *buf, size_t n) {
   const char *env = getenv("HRM_HISTORY");
   const char *home = getenv("HOME");
   if (env && *env) snprintf(buf, n, "%s", env);
   else snprintf(buf, n, "%s/.hrm_history", home ? home : ".");
}

/* hrm.repl.eval(source) -> "ok" | "incomplete" | "error" */
static int eval(lua_State *L, const char *source) {
   lua_getglobal(L, "hrm");
   lua_getfield(L, -1, "repl");
   lua_getfield(L, -1, "eval");
   lua_remove(L, -2);
   lua_remove(L, -2);
   lua_pushstring(L, source);
   int status = hrm_host_docall(L, 1, 1);
   interrupt_pending = 0; /* a Ctrl-C that came while the command ran was for the command */
   if (status != 0) {
      hrm_host_report(L, status);
      return 0;
   }
   int incomplete = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "incomplete") == 0;
   lua_pop(L, 1);
   return incomplete;
}

int hrm_host_repl(lua_State *L) {
   char hist[4096];
   history_path(hist, sizeof hist);
   using_history();
   if (read_history(hist) != 0) write_history(hist); /* create it on first use */
   stifle_history(5000);
   completion_state = L;
   rl_readline_name = "hrm";
   rl_attempted_completion_function = complete;
   rl_basic_word_break_characters = " \t\n\"'`@$><=;|&{(,+-*/%^#~[]";
   rl_catch_signals = 0;
   rl_getc_function = read_key;
   in_session = 1;
   interrupt_pending = 0;
   chunk_running = 0;
   install_sigint(on_sigint);
   lua_getglobal(L, "hrm");
   lua_getfield(L, -1, "repl");
   lua_pushcfunction(L, set_interruptible);
   lua_setfield(L, -2, "_interruptible");
   lua_pop(L, 2);

   lua_getglobal(L, "hrm");
   lua_getfield(L, -1, "repl");
   lua_getfield(L, -1, "banner");
   lua_remove(L, -2);
   lua_remove(L, -2);
   if (lua_isfunction(L, -1)) hrm_host_report(L, lua_pcall(L, 0, 0, 0));
   else lua_pop(L, 1);

   char *buffer = NULL;
   size_t len = 0;
   for (;;) {
      line_interrupted = 0;
      char *line = readline(buffer ? ">> " : "> ");
      if (!line) break; /* end of input */
      if (line_interrupted) { /* Ctrl-C: drop the line and any pending continuation lines */
         free(line);
         free(buffer);
         buffer = NULL;
         len = 0;
         continue;
      }
      size_t add = strlen(line);
      char *grown = realloc(buffer, len + add + 2);
      if (!grown) {
         free(line);
         break;
      }
      buffer = grown;
      if (len) buffer[len++] = '\n';
      memcpy(buffer + len, line, add + 1);
      len += add;
      free(line);
      if (len == 0) {
         free(buffer);
         buffer = NULL;
         continue;
      }
      if (eval(L, buffer)) continue; /* incomplete: read more */
      add_history(buffer);
      append_history(1, hist);
      history_truncate_file(hist, 5000);
      free(buffer);
      buffer = NULL;
      len = 0;
   }
   free(buffer);
   in_session = 0;
   chunk_running = 1;
   hrm_host_interrupts(L, 0);
   if (completion_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, completion_ref);
   putchar('\n');
   return 0;
}
