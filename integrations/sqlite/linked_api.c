/*
 * The SQLite functions mcsafe_sqlite.c calls, for a program that links
 * libmcsafe_sqlite and calls mcsafe_sqlite_register (no sqlite3_load_extension
 * to hand it SQLite's routines).
 *
 * mcsafe_sqlite.c is written as a loadable extension: every sqlite3_* call goes
 * through the routine table `sqlite3_api`, which sqlite3_load_extension passes
 * in. That way a host with its own copy of SQLite inside (not libsqlite3.so) is
 * served by that copy. Linked into a program instead, the table is filled here
 * from the program's libsqlite3. The references are weak, so that loading the
 * extension into a host without libsqlite3 does not fail on them.
 *
 * SQLITE_CORE: the declarations of sqlite3ext.h without its call-renaming
 * macros, so that the names below are the real functions.
 */
#define SQLITE_CORE 1
#include <sqlite3.h>
#include <sqlite3ext.h>

#pragma weak sqlite3_vfs_find
#pragma weak sqlite3_vfs_register
#pragma weak sqlite3_log
#pragma weak sqlite3_mprintf

const sqlite3_api_routines *mcsafe_sqlite_linked_api(void);

/* NULL when the program has no SQLite in its global symbol scope. */
const sqlite3_api_routines *mcsafe_sqlite_linked_api(void) {
    static sqlite3_api_routines api;
    if (!sqlite3_vfs_find || !sqlite3_vfs_register || !sqlite3_log || !sqlite3_mprintf) {
        return 0;
    }
    api.vfs_find = sqlite3_vfs_find;
    api.vfs_register = sqlite3_vfs_register;
    api.log = sqlite3_log;
    api.mprintf = sqlite3_mprintf;
    return &api;
}
