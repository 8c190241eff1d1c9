/* host.h — shared declarations of the hrm executable's host files (main.c, repl.c).
 *
 * The host is the only part of hrm that uses the Lua C API and may exit; the library
 * (the core library) never calls into Lua.
 */
#ifndef HRM_HOST_H
#define HRM_HOST_H

#include <lua.h>

/* Call the function below narg arguments with a traceback handler and Ctrl-C enabled. */
int hrm_host_docall(lua_State *L, int narg, int nres);
/* Print the error on top of the stack to stderr (if status != 0) and pop it. */
int hrm_host_report(lua_State *L, int status);
/* Enable (1) or disable (0) turning SIGINT into a Lua error "interrupted". */
void hrm_host_interrupts(lua_State *L, int on);
/* The interactive loop: line editing, history, completion; returns 0 at end of input. */
int hrm_host_repl(lua_State *L);

#endif
