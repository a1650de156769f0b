/*
 * Databases that are not files, a file that shrinks to zero, a missing file:
 * through the mcsafe VFS, the error stock SQLite gives (the same code and
 * message), never a crash or a hang.
 *
 *   bad_input DIR [EXTENSION]   scratch files go in DIR
 *
 * Prints a line per case; exits 1 on a failed check.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

struct outcome {
    int rc;
    char message[256];
};

/* Opens `path` through `vfs` with `flags`, runs `sql`, reports the first error. */
static struct outcome attempt(const char *path, const char *vfs, int flags, const char *sql) {
    struct outcome out = {SQLITE_OK, "ok"};
    sqlite3 *db = NULL;
    out.rc = sqlite3_open_v2(path, &db, flags, vfs);
    sqlite3_extended_result_codes(db, 1);
    if (out.rc == SQLITE_OK) {
        char *error = NULL;
        out.rc = sqlite3_exec(db, sql, NULL, NULL, &error);
        snprintf(out.message, sizeof out.message, "%s", error ? error : "ok");
        sqlite3_free(error);
    } else {
        snprintf(out.message, sizeof out.message, "%s", sqlite3_errmsg(db));
    }
    CHECK(sqlite3_close(db) == SQLITE_OK, "close %s through %s", path, vfs);
    return out;
}

/* The same outcome through the stock VFS and through mcsafe. */
static void same(const char *what, const char *path, int flags, const char *sql) {
    struct outcome stock = attempt(path, "unix", flags, sql);
    struct outcome mcsafe = attempt(path, "mcsafe", flags, sql);
    CHECK(stock.rc == mcsafe.rc && strcmp(stock.message, mcsafe.message) == 0,
          "%s: stock %d \"%s\", mcsafe %d \"%s\"", what, stock.rc, stock.message, mcsafe.rc, mcsafe.message);
    printf("bad_input %s: %d \"%s\" through both\n", what, mcsafe.rc, mcsafe.message);
}

static void exec_ok(sqlite3 *db, const char *sql) {
    char *error = NULL;
    CHECK(sqlite3_exec(db, sql, NULL, NULL, &error) == SQLITE_OK, "%s: %s", sql, error ? error : "?");
    sqlite3_free(error);
}

/* A read transaction open, then the file cut to zero bytes under it. */
static void shrinks_to_zero(const char *path, const char *vfs, const char *mmap, int *during, int *after,
                            char *after_message, size_t size) {
    unlink(path);
    sqlite3 *db;
    CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) == SQLITE_OK, "open");
    sqlite3_extended_result_codes(db, 1);
    exec_ok(db, "PRAGMA cache_size=-100");
    exec_ok(db, mmap);
    exec_ok(db, "CREATE TABLE t(n, pad); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                "WHERE x < 20000) INSERT INTO t SELECT x, randomblob(200) FROM c");
    exec_ok(db, "BEGIN; SELECT count(*) FROM t WHERE rowid < 5");
    CHECK(truncate(path, 0) == 0, "truncate: %s", strerror(errno));
    *during = sqlite3_exec(db, "SELECT sum(n) FROM t", NULL, NULL, NULL);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    /* A new transaction sees the file as it is now: empty. */
    char *error = NULL;
    *after = sqlite3_exec(db, "SELECT count(*) FROM t", NULL, NULL, &error);
    snprintf(after_message, size, "%s", error ? error : "ok");
    sqlite3_free(error);
    CHECK(sqlite3_close(db) == SQLITE_OK, "close after the file shrank to zero");
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: bad_input DIR [EXTENSION]\n");
        return 2;
    }
    capture_sqlite_log();
    use_mcsafe_vfs(argc == 3 ? argv[2] : NULL);
    char path[4096];
    const char *dir = argv[1];
    const int rw = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;

    /* :memory: never reaches a VFS: it works as ever with mcsafe the default. */
    sqlite3 *db;
    CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK, "open :memory:");
    exec_ok(db, "CREATE TABLE m(x); INSERT INTO m VALUES (41), (1)");
    sqlite3_stmt *sum;
    sqlite3_prepare_v2(db, "SELECT sum(x) FROM m", -1, &sum, NULL);
    CHECK(sqlite3_step(sum) == SQLITE_ROW && sqlite3_column_int(sum, 0) == 42, ":memory: sum");
    sqlite3_finalize(sum);
    CHECK(sqlite3_close(db) == SQLITE_OK, "close :memory:");
    printf("bad_input :memory:: works, mcsafe the default VFS\n");

    /* A FIFO: the VFS must not block opening it, nor map it. */
    snprintf(path, sizeof path, "%s/pipe", dir);
    unlink(path);
    CHECK(mkfifo(path, 0600) == 0, "mkfifo: %s", strerror(errno));
    same("a pipe", path, rw, "SELECT count(*) FROM sqlite_master");
    unlink(path);

    snprintf(path, sizeof path, "%s", dir);
    same("a directory", path, rw, "SELECT count(*) FROM sqlite_master");

    snprintf(path, sizeof path, "%s/missing.db", dir);
    unlink(path);
    same("a missing file, read-only", path, SQLITE_OPEN_READONLY, "SELECT 1");
    same("a missing file, read-write without create", path, SQLITE_OPEN_READWRITE, "SELECT 1");

    /* Shrunk to zero under an open read transaction: through mcsafe (with
     * mmap asked for) the read of a lost page is SQLITE_IOERR_READ; stock
     * SQLite reading with pread finds a short read. Afterwards both see an
     * empty database. */
    int during_mcsafe, after_mcsafe, during_stock, after_stock;
    char after_mcsafe_message[256], after_stock_message[256];
    snprintf(path, sizeof path, "%s/shrinks.db", dir);
    shrinks_to_zero(path, "mcsafe", "PRAGMA mmap_size=1073741824", &during_mcsafe, &after_mcsafe,
                    after_mcsafe_message, sizeof after_mcsafe_message);
    shrinks_to_zero(path, "unix", "PRAGMA mmap_size=0", &during_stock, &after_stock, after_stock_message,
                    sizeof after_stock_message);
    unlink(path);
    CHECK(during_mcsafe == SQLITE_IOERR_READ, "read of a file shrunk to zero: %d", during_mcsafe);
    CHECK(during_stock != SQLITE_OK, "stock pread of a file shrunk to zero: %d", during_stock);
    CHECK(after_mcsafe == after_stock && strcmp(after_mcsafe_message, after_stock_message) == 0,
          "then: mcsafe %d \"%s\", stock %d \"%s\"", after_mcsafe, after_mcsafe_message, after_stock,
          after_stock_message);
    printf("bad_input a file shrunk to zero under a read: mcsafe %d (%s), stock pread %d (%s); "
           "the next transaction: %d \"%s\" through both\n",
           during_mcsafe, sqlite3_errstr(during_mcsafe), during_stock, sqlite3_errstr(during_stock),
           after_mcsafe, after_mcsafe_message);

    printf("bad_input: %d failures\n", failures);
    return failures ? 1 : 0;
}
