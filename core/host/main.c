/* main.c — the `hrm` program: LuaJIT with the hrm package preloaded, modelled on `luajit`.
 *
 *   hrm [options] [script.lua [args...]]     -e chunk, -l module, -i, -v, -h,
 *                                            --threads N, --seed N, --device NAME, -  (stdin)
 *
 * The host finds the Lua package (source tree or installation), sets the global `hrm`, runs
 * the chunks and the script with a traceback on error (status 1), and starts the REPL when asked
 * or when no script is given on a terminal. This is the only place that may call exit.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>

#include "host.h"
#include "hrm.h"

static void usage(FILE *f) {
   fputs("usage: hrm [options] [script.lua [args...]]\n"
         "Runs a Lua script (or the REPL) with the hrm package loaded as the global `hrm`.\n\n"
         "  -e chunk        run the Lua string `chunk`\n"
         "  -l module       require `module` and set a global of the same name\n"
         "  -i              enter the REPL after running the script / chunks\n"
         "  -v              print versions (hrm, LuaJIT, BLAS, threads, CUDA) and exit\n"
         "  -h, --help      print this help and exit\n"
         "  --threads N     number of CPU threads (OpenMP and BLAS); default: HRM_THREADS or all\n"
         "  --seed N        seed of the global random generator\n"
         "  --device NAME   default device for new models: cpu or cuda\n"
         "  -               read the program from standard input\n"
         "  --              stop handling options\n\n"
         "Without a script: the REPL on a terminal, else the program is read from stdin.\n",
         f);
}

/* Directory holding lua/hrm/init.lua: $HRM_HOME, next to an installed binary, or the source. */
static const char *find_root(void) {
   static char root[PATH_MAX];
   char probe[PATH_MAX + 64];
   const char *env = getenv("HRM_HOME");
   if (env && *env) {
      snprintf(root, sizeof root, "%s", env);
      return root;
   }
   char exe[PATH_MAX - 32];
   ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
   if (n > 0) {
      exe[n] = '\0';
      char *slash = strrchr(exe, '/');
      if (slash) *slash = '\0';
      snprintf(probe, sizeof probe, "%s/../share/hrm/lua/hrm/init.lua", exe);
      if (access(probe, R_OK) == 0) {
         snprintf(root, sizeof root, "%s/../share/hrm", exe);
         return root;
      }
   }
   snprintf(probe, sizeof probe, "%s/lua/hrm/init.lua", HRM_SOURCE_DIR);
   if (access(probe, R_OK) == 0) return HRM_SOURCE_DIR;
   return HRM_INSTALL_DATADIR;
}

static void setup_paths(lua_State *L, const char *root) {
   lua_getglobal(L, "package");
   lua_getfield(L, -1, "path");
   lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s/?.lua;%s/?/init.lua;%s", root, root, root,
                   root, lua_tostring(L, -1));
   lua_setfield(L, -3, "path");
   lua_pop(L, 1);
   lua_pushstring(L, root);
   lua_setfield(L, -2, "hrm_home");
   lua_pop(L, 1);
}

static int traceback(lua_State *L) {
   hrm_host_interrupts(L, 0); /* a second Ctrl-C must not raise again inside the error report */
   const char *msg = lua_tostring(L, 1);
   if (!msg) {
      if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
      lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
      return 1;
   }
   luaL_traceback(L, L, msg, 1);
   return 1;
}

int hrm_host_report(lua_State *L, int status) {
   if (status != 0 && !lua_isnil(L, -1)) {
      const char *msg = lua_tostring(L, -1);
      fprintf(stderr, "hrm: %s\n", msg ? msg : "(error object is not a string)");
      fflush(stderr);
      lua_pop(L, 1);
   }
   return status;
}

int hrm_host_docall(lua_State *L, int narg, int nres) {
   int base = lua_gettop(L) - narg;
   lua_pushcfunction(L, traceback);
   lua_insert(L, base);
   hrm_host_interrupts(L, 1);
   int status = lua_pcall(L, narg, nres, base);
   hrm_host_interrupts(L, 0);
   hrm_interrupt_defer(0); /* nothing runs now: drop an interrupt request no loop took */
   lua_remove(L, base);
   return status;
}

static int run_chunk(lua_State *L, const char *chunk) {
   int status = luaL_loadbuffer(L, chunk, strlen(chunk), "=(command line)");
   if (status == 0) status = hrm_host_docall(L, 0, 0);
   return hrm_host_report(L, status);
}

static int run_require(lua_State *L, const char *name) {
   lua_getglobal(L, "require");
   lua_pushstring(L, name);
   int status = hrm_host_docall(L, 1, 1);
   if (status == 0) lua_setglobal(L, name);
   return hrm_host_report(L, status);
}

/* Script (or stdin when path is NULL) with `arg` already set; its arguments are passed too. */
static int run_script(lua_State *L, const char *path, int argc, char **argv, int first) {
   int status = luaL_loadfile(L, path);
   if (status != 0) return hrm_host_report(L, status);
   int n = 0;
   for (int i = first; i < argc; i++, n++) lua_pushstring(L, argv[i]);
   return hrm_host_report(L, hrm_host_docall(L, n, 0));
}

static void set_arg(lua_State *L, int argc, char **argv, int script) {
   lua_createtable(L, argc - script, script + 1);
   for (int i = 0; i < argc; i++) {
      lua_pushstring(L, argv[i]);
      lua_rawseti(L, -2, i - script);
   }
   lua_setglobal(L, "arg");
}

static int parse_int(const char *s, long lo, long hi, long *out) {
   char *end;
   errno = 0;
   long v = strtol(s, &end, 10);
   if (errno || *s == '\0' || *end != '\0' || v < lo || v > hi) return 0;
   *out = v;
   return 1;
}

int main(int argc, char **argv) {
   int interactive = 0, version = 0, script = 0, use_stdin = 0;
   long threads = 0, seed = -1;
   const char *device = NULL;
   /* First pass: options that configure the host; -e/-l are run in order later. */
   int i;
   for (i = 1; i < argc; i++) {
      const char *a = argv[i];
      if (a[0] != '-') break;
      if (strcmp(a, "--") == 0) { i++; break; }
      if (strcmp(a, "-") == 0) { use_stdin = 1; break; }
      if (strcmp(a, "-i") == 0) interactive = 1;
      else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) version = 1;
      else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { usage(stdout); return 0; }
      else if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
         if (++i >= argc) {
            fprintf(stderr, "hrm: option '%s' needs an argument\n", a);
            usage(stderr);
            return 1;
         }
      } else if (strcmp(a, "--threads") == 0 || strcmp(a, "--seed") == 0 ||
                 strcmp(a, "--device") == 0) {
         if (++i >= argc) {
            fprintf(stderr, "hrm: option '%s' needs an argument\n", a);
            return 1;
         }
         if (a[2] == 't' && !parse_int(argv[i], 1, 4096, &threads)) {
            fprintf(stderr, "hrm: --threads expects a whole number from 1 to 4096, got '%s'\n",
                    argv[i]);
            return 1;
         }
         if (a[2] == 's' && !parse_int(argv[i], 0, LONG_MAX, &seed)) {
            fprintf(stderr, "hrm: --seed expects a non-negative whole number, got '%s'\n", argv[i]);
            return 1;
         }
         if (a[2] == 'd') device = argv[i];
      } else {
         fprintf(stderr, "hrm: unknown option '%s'\n", a);
         usage(stderr);
         return 1;
      }
   }
   script = (i < argc && !use_stdin) ? i : 0;

   if (threads == 0) {
      const char *env = getenv("HRM_THREADS");
      if (env && !parse_int(env, 1, 4096, &threads)) {
         fprintf(stderr, "hrm: HRM_THREADS expects a whole number from 1 to 4096, got '%s'\n", env);
         return 1;
      }
   }
   if (threads > 0 && hrm_set_threads((int32_t)threads) != HRM_OK) {
      fprintf(stderr, "hrm: %s\n", hrm_last_error());
      return 1;
   }

   lua_State *L = luaL_newstate();
   if (!L) {
      fputs("hrm: cannot create the Lua state (out of memory)\n", stderr);
      return 1;
   }
   luaL_openlibs(L);
   setup_paths(L, find_root());
   set_arg(L, argc, argv, script ? script : (use_stdin ? i : argc));

   /* The global `hrm`, configured from the command line. */
   lua_getglobal(L, "require");
   lua_pushstring(L, "hrm");
   if (hrm_host_report(L, hrm_host_docall(L, 1, 1))) {
      fputs("hrm: the Lua package could not be loaded; set HRM_HOME to the folder holding lua/hrm\n",
            stderr);
      lua_close(L);
      return 1;
   }
   lua_setglobal(L, "hrm");
   char chunk[160];
   int setup = 0;
   if (seed >= 0) {
      snprintf(chunk, sizeof chunk, "hrm.manual_seed(%ld)", seed);
      setup = run_chunk(L, chunk);
   }
   if (device && setup == 0) {
      snprintf(chunk, sizeof chunk, "hrm.set_default_device(%s%.100s%s)", "[==[", device, "]==]");
      setup = run_chunk(L, chunk);
   }
   if (setup) {
      lua_close(L);
      return 1;
   }

   if (version) {
      printf("hrm %s (ABI %d)\n%s\nBLAS: %s\nthreads: %d\nCUDA: %s\n", hrm_version(),
             hrm_abi_version(), LUAJIT_VERSION, hrm_blas_info(), hrm_get_threads(),
             hrm_cuda_available() ? "available" : "not available (CPU build or no device)");
      lua_close(L);
      return 0;
   }

   /* -e and -l in the order given */
   int status = 0;
   for (int k = 1; k < (script ? script : i) && status == 0; k++) {
      if (strcmp(argv[k], "-e") == 0) status = run_chunk(L, argv[++k]);
      else if (strcmp(argv[k], "-l") == 0) status = run_require(L, argv[++k]);
      else if (strcmp(argv[k], "--threads") == 0 || strcmp(argv[k], "--seed") == 0 ||
               strcmp(argv[k], "--device") == 0)
         k++;
   }
   int ran_something = 0;
   for (int k = 1; k < (script ? script : i); k++)
      if (strcmp(argv[k], "-e") == 0) ran_something = 1;

   if (status == 0) {
      if (script) status = run_script(L, argv[script], argc, argv, script + 1);
      else if (use_stdin) status = run_script(L, NULL, argc, argv, i + 1);
      else if (!interactive && !ran_something) {
         if (isatty(0)) interactive = 1;
         else status = run_script(L, NULL, argc, argv, argc);
      }
   }
   if (status == 0 && interactive) status = hrm_host_repl(L);
   lua_close(L);
   return status ? 1 : 0;
}
