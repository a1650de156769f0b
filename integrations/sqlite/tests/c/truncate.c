/*
 * A SELECT stepped halfway through a 50 MB table, then the database file
 * truncated far below the rows still to come, as another process's checkpoint
 * would.
 *
 *   truncate create DB OTHER        the table (50,000 rows of 1000 bytes) and a
 *                                   second database, through the default VFS
 *   truncate stock DB OTHER         stock SQLite, PRAGMA mmap_size=1073741824:
 *                                   dies by SIGBUS (the caller checks)
 *   truncate mcsafe DB OTHER [EXT]  the same through the mcsafe VFS (linked, or
 *                                   the extension EXT loaded): sqlite3_step
 *                                   returns SQLITE_IOERR_READ, sqlite3_log names
 *                                   the file and offset, the attached database
 *                                   still answers, the connection closes
 *
 * Every row read is checked byte for byte. Prints one summary line; exits 1
 * on a failed check.
 */
#include <errno.h>
#include <unistd.h>

#include <mcsafe.h>

#include "check.h"

#define ROWS 50000
#define PAYLOAD 1000
#define OTHER_ROWS 123
/* Far below row ROWS / 2 (about 25 MB into the file). */
#define CUT (1 << 20)

static unsigned char expected_byte(long id, int i) {
    return (unsigned char)((id * 131 + i * 7) ^ (i >> 5));
}

static void payload(long id, unsigned char *out) {
    for (int i = 0; i < PAYLOAD; i++) {
        out[i] = expected_byte(id, i);
    }
}

static int exec(sqlite3 *db, const char *sql) {
    char *error = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &error);
    CHECK(rc == SQLITE_OK, "%s: %s", sql, error ? error : "?");
    sqlite3_free(error);
    return rc;
}

static int create(const char *path, const char *other_path) {
    unlink(path);
    unlink(other_path);
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK, "open %s", path);
    exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, payload BLOB); BEGIN");
    sqlite3_stmt *insert;
    sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?, ?, ?)", -1, &insert, NULL);
    unsigned char blob[PAYLOAD];
    for (long id = 1; id <= ROWS; id++) {
        payload(id, blob);
        sqlite3_bind_int64(insert, 1, id);
        sqlite3_bind_int64(insert, 2, id * 2);
        sqlite3_bind_blob(insert, 3, blob, PAYLOAD, SQLITE_STATIC);
        CHECK(sqlite3_step(insert) == SQLITE_DONE, "insert %ld", id);
        sqlite3_reset(insert);
    }
    sqlite3_finalize(insert);
    exec(db, "COMMIT");
    CHECK(sqlite3_close(db) == SQLITE_OK, "close");
    CHECK(sqlite3_open(other_path, &db) == SQLITE_OK, "open %s", other_path);
    exec(db, "CREATE TABLE t2(x); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 123) "
             "INSERT INTO t2 SELECT x FROM c");
    CHECK(sqlite3_close(db) == SQLITE_OK, "close");
    printf("truncate create: %d rows of %d bytes in %s, %d in %s\n", ROWS, PAYLOAD, path, OTHER_ROWS,
           other_path);
    return failures ? 1 : 0;
}

/* Steps `stmt` until it stops returning rows or `limit` rows; checks each. */
static long step_rows(sqlite3_stmt *stmt, long from, long limit, int *rc) {
    long rows = 0;
    while (rows < limit && (*rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        long id = (long)sqlite3_column_int64(stmt, 0);
        const unsigned char *blob = sqlite3_column_blob(stmt, 2);
        unsigned char want[PAYLOAD];
        payload(id, want);
        CHECK(id == from + rows + 1, "row %ld has id %ld", from + rows + 1, id);
        CHECK(sqlite3_column_int64(stmt, 1) == 2 * id, "n of row %ld", id);
        CHECK(sqlite3_column_bytes(stmt, 2) == PAYLOAD && memcmp(blob, want, PAYLOAD) == 0, "payload of row %ld",
              id);
        rows++;
    }
    return rows;
}

static int run(int mcsafe, const char *path, const char *other_path, const char *extension) {
    capture_sqlite_log();
    if (mcsafe) {
        use_mcsafe_vfs(extension);
    }
    sqlite3 *db;
    CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK, "open %s", path);
    sqlite3_extended_result_codes(db, 1);
    const char *vfs = vfs_name(db);
    CHECK(strcmp(vfs, mcsafe ? "mcsafe/unix" : "unix") == 0, "the database's VFS is %s", vfs);
    /* What an application that wants speed asks for; a small page cache, so
     * that the rows to come are read from the file. */
    exec(db, "PRAGMA mmap_size=1073741824; PRAGMA cache_size=-1000");
    char attach[4200];
    snprintf(attach, sizeof attach, "ATTACH '%s' AS other", other_path);
    exec(db, attach);

    sqlite3_stmt *select;
    CHECK(sqlite3_prepare_v2(db, "SELECT id, n, payload FROM t", -1, &select, NULL) == SQLITE_OK, "prepare");
    int rc = SQLITE_OK;
    long first = step_rows(select, 0, ROWS / 2, &rc);
    CHECK(first == ROWS / 2, "stepped %ld rows before the truncation (rc %d)", first, rc);
    CHECK(truncate(path, CUT) == 0, "truncate: %s", strerror(errno));
    fflush(stdout);
    /* Stock SQLite with mmap dies in here. */
    long more = step_rows(select, first, ROWS, &rc);
    int step_rc = rc;

    CHECK(rc == SQLITE_IOERR_READ, "sqlite3_step after the truncation: %d (%s), after %ld more rows", rc,
          sqlite3_errstr(rc), more);
    CHECK(first + more < ROWS, "read every row of a truncated file");
    CHECK(last_log_code == SQLITE_IOERR_READ, "sqlite3_log code %d: %s", last_log_code, last_log);
    CHECK(strstr(last_log, path) != NULL, "the log names the file: %s", last_log);
    const char *at = strstr(last_log, "at file offset ");
    long long offset = at ? strtoll(at + strlen("at file offset "), NULL, 10) : -1;
    CHECK(offset >= CUT && offset % 4096 == 0, "the log names the lost page's offset: %s", last_log);
    struct mcsafe_stats stats;
    CHECK(mcsafe_get_stats(&stats) == 0 && stats.recovered >= 1, "mcsafe recovered no fault");
    rc = sqlite3_finalize(select);
    CHECK(rc == SQLITE_IOERR_READ, "sqlite3_finalize: %d", rc);

    sqlite3_stmt *count;
    CHECK(sqlite3_prepare_v2(db, "SELECT count(*) FROM other.t2", -1, &count, NULL) == SQLITE_OK, "prepare: %s",
          sqlite3_errmsg(db));
    rc = sqlite3_step(count);
    long other_rows = rc == SQLITE_ROW ? (long)sqlite3_column_int64(count, 0) : -1;
    CHECK(other_rows == OTHER_ROWS, "the attached database answers %ld (rc %d %s)", other_rows, rc,
          sqlite3_errmsg(db));
    sqlite3_finalize(count);
    rc = sqlite3_close(db);
    CHECK(rc == SQLITE_OK, "sqlite3_close: %d", rc);

    printf("truncate %s: %ld of %d rows read exactly, then sqlite3_step: %s; sqlite3_log: \"%s\"; "
           "other.t2 answers %ld rows; sqlite3_close: %s; %llu fault(s) recovered: %d failures\n",
           extension ? "mcsafe (extension loaded)" : "mcsafe (linked)", first + more, ROWS,
           step_rc == SQLITE_IOERR_READ ? "SQLITE_IOERR_READ" : sqlite3_errstr(step_rc), last_log, other_rows,
           rc == SQLITE_OK ? "SQLITE_OK" : sqlite3_errstr(rc), (unsigned long long)stats.recovered, failures);
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "create") == 0) {
        return create(argv[2], argv[3]);
    }
    if (argc == 4 && strcmp(argv[1], "stock") == 0) {
        int rc = run(0, argv[2], argv[3], NULL);
        printf("truncate stock: survived the truncation (%d failures)\n", failures);
        return rc;
    }
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "mcsafe") == 0) {
        return run(1, argv[2], argv[3], argc == 5 ? argv[4] : NULL);
    }
    fprintf(stderr, "usage: truncate create|stock|mcsafe DB OTHER [EXTENSION]\n");
    return 2;
}
