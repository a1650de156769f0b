/*
 * What the VFS's C test programs share: failed checks, the sqlite3_log
 * messages they capture, and how the VFS gets into the process (linked, or
 * loaded as an extension).
 */
#ifndef MCSAFE_SQLITE_TEST_CHECK_H
#define MCSAFE_SQLITE_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#ifdef MCSAFE_SQLITE_LINKED
#include <mcsafe_sqlite.h>
#endif

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                 \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

/* The last message of the mcsafe VFS that sqlite3_log received (SQLite's own
 * messages, such as "statement aborts at ...", follow it), and its code. */
static char last_log[1024];
static int last_log_code;

static void capture_log(void *unused, int code, const char *message) {
    (void)unused;
    if (strncmp(message, "mcsafe: ", 8) == 0) {
        last_log_code = code;
        snprintf(last_log, sizeof last_log, "%s", message);
    }
}

/* Before any other SQLite call. */
static void capture_sqlite_log(void) {
    if (sqlite3_config(SQLITE_CONFIG_LOG, capture_log, NULL) != SQLITE_OK) {
        printf("FAIL: sqlite3_config(SQLITE_CONFIG_LOG)\n");
        exit(1);
    }
}

/* Registers the "mcsafe" VFS as the default: through mcsafe_sqlite_register
 * in a program linked with it, else by loading the extension at `extension`
 * (a path without ".so"), as an application that loads extensions does. */
static void use_mcsafe_vfs(const char *extension) {
#ifdef MCSAFE_SQLITE_LINKED
    (void)extension;
    int rc = mcsafe_sqlite_register(1);
    CHECK(rc == SQLITE_OK, "mcsafe_sqlite_register: %d", rc);
    CHECK(mcsafe_sqlite_register(1) == SQLITE_OK, "a second registration");
#else
    sqlite3 *db;
    CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK, "open :memory:");
    sqlite3_enable_load_extension(db, 1);
    char *error = NULL;
    int rc = sqlite3_load_extension(db, extension, NULL, &error);
    CHECK(rc == SQLITE_OK, "sqlite3_load_extension(%s): %d %s", extension, rc, error ? error : "");
    sqlite3_free(error);
    /* SQLITE_OK_LOAD_PERMANENTLY: the VFS stays after this connection. */
    CHECK(sqlite3_close(db) == SQLITE_OK, "close the loading connection");
#endif
    sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
    CHECK(vfs && strcmp(vfs->zName, "mcsafe") == 0, "the default VFS is %s", vfs ? vfs->zName : "none");
}

/* The VFS a connection's main database uses, e.g. "mcsafe/unix". */
__attribute__((unused)) static const char *vfs_name(sqlite3 *db) {
    static char name[64];
    char *got = NULL;
    name[0] = 0;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_VFSNAME, &got) == SQLITE_OK && got) {
        snprintf(name, sizeof name, "%s", got);
    }
    sqlite3_free(got);
    return name;
}

#endif
