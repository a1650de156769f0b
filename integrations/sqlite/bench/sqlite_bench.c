/*
 * The mcsafe VFS against stock SQLite, reading with mmap and with pread, in
 * one run: point lookups and a full scan of a 50 MB table with a small page
 * cache (PRAGMA cache_size=-2000, 2 MB), so that most pages come from the
 * file (the OS page cache: the file is read before the rounds). The program
 * reads what it selects (a checksum of each row's payload), as programs do;
 * also, without a goal, sum(n) over the table, which reads only the start of
 * each row.
 *
 *   sqlite_bench DB [--quick]     DB is made first if it does not exist
 *
 * Three read-only connections to the same file: "mcsafe" (with PRAGMA
 * mmap_size=1073741824, as an application asking for speed would set it;
 * the VFS reads from its own mapping whatever it is), "unix" with mmap_size
 * 1 GiB, "unix" with mmap_size 0 (pread). Rounds rotate the order of the
 * three; in each, every connection runs the same random lookups and one
 * scan. Medians over the rounds; ratios of queries/s. Goals (issue 21):
 * mcsafe >= 0.9x stock mmap, and faster than stock pread. Exits 1 when one
 * is missed. Run by `cargo bench -p mcsafe-sqlite-tests` (benches/sqlite.rs).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mcsafe_sqlite.h>
#include <sqlite3.h>

#define ROWS 50000
#define PAYLOAD 1000
#define CONFIGS 3

static const char *const names[CONFIGS] = {"mcsafe VFS", "stock mmap", "stock pread"};

static void die(const char *what, sqlite3 *db) {
    fprintf(stderr, "sqlite_bench: %s: %s\n", what, db ? sqlite3_errmsg(db) : "");
    exit(2);
}

static void exec(sqlite3 *db, const char *sql) {
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        die(sql, db);
    }
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t next_random(uint64_t *x) {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545f4914f6cdd1dULL;
}

static void create(const char *path) {
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix") != SQLITE_OK) {
        die("create", db);
    }
    exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, payload BLOB);"
             "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000) "
             "INSERT INTO t SELECT x, 2 * x, randomblob(1000) FROM c");
    sqlite3_close(db);
}

struct connection {
    sqlite3 *db;
    sqlite3_stmt *lookup;
    sqlite3_stmt *scan;   /* every row, read by the program */
    sqlite3_stmt *column; /* one integer column summed inside SQLite */
};

static struct connection open_config(const char *path, int config) {
    struct connection c;
    const char *vfs = config == 0 ? "mcsafe" : "unix";
    if (sqlite3_open_v2(path, &c.db, SQLITE_OPEN_READONLY, vfs) != SQLITE_OK) {
        die("open", c.db);
    }
    exec(c.db, config == 2 ? "PRAGMA mmap_size=0" : "PRAGMA mmap_size=1073741824");
    exec(c.db, "PRAGMA cache_size=-2000");
    if (sqlite3_prepare_v2(c.db, "SELECT n, payload FROM t WHERE id = ?", -1, &c.lookup, NULL) ||
        sqlite3_prepare_v2(c.db, "SELECT n, payload FROM t", -1, &c.scan, NULL) ||
        sqlite3_prepare_v2(c.db, "SELECT sum(n) FROM t", -1, &c.column, NULL)) {
        die("prepare", c.db);
    }
    return c;
}

/* What a program does with a row it selected: reads it (a checksum of its words). */
static uint64_t consume(const unsigned char *blob, int len) {
    uint64_t sum = 0, word;
    for (int i = 0; i + 8 <= len; i += 8) {
        memcpy(&word, blob + i, 8);
        sum += word;
    }
    return sum;
}

static volatile uint64_t sink;

/* Seconds for `n` random lookups (seeded by `seed`), each result checked and read. */
static double lookups(struct connection *c, uint64_t seed, int n) {
    uint64_t x = seed | 1;
    double start = now();
    for (int i = 0; i < n; i++) {
        int64_t id = (int64_t)(next_random(&x) % ROWS) + 1;
        sqlite3_bind_int64(c->lookup, 1, id);
        if (sqlite3_step(c->lookup) != SQLITE_ROW || sqlite3_column_int64(c->lookup, 0) != 2 * id ||
            sqlite3_column_bytes(c->lookup, 1) != PAYLOAD) {
            die("lookup", c->db);
        }
        sink += consume(sqlite3_column_blob(c->lookup, 1), PAYLOAD);
        sqlite3_reset(c->lookup);
    }
    return now() - start;
}

/* Seconds for a scan of every row, each read by the program. */
static double scan(struct connection *c) {
    double start = now();
    int64_t rows = 0, total = 0;
    while (sqlite3_step(c->scan) == SQLITE_ROW) {
        total += sqlite3_column_int64(c->scan, 0);
        sink += consume(sqlite3_column_blob(c->scan, 1), sqlite3_column_bytes(c->scan, 1));
        rows++;
    }
    if (sqlite3_reset(c->scan) != SQLITE_OK || rows != ROWS || total != (int64_t)ROWS * (ROWS + 1)) {
        die("scan", c->db);
    }
    return now() - start;
}

/* Seconds for summing one column inside SQLite: it reads the start of each
 * row only, so in place (mmap) it touches a few cache lines of each page. */
static double column_sum(struct connection *c) {
    double start = now();
    if (sqlite3_step(c->column) != SQLITE_ROW ||
        sqlite3_column_int64(c->column, 0) != (int64_t)ROWS * (ROWS + 1)) {
        die("column sum", c->db);
    }
    sqlite3_reset(c->column);
    return now() - start;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare);
    return v[n / 2];
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: sqlite_bench DB [--quick]\n");
        return 2;
    }
    int quick = argc > 2 && strcmp(argv[2], "--quick") == 0;
    int rounds = quick ? 5 : 15, per_round = quick ? 5000 : 20000;
    const char *path = argv[1];
    if (access(path, F_OK) != 0) {
        create(path);
    }
    if (mcsafe_sqlite_register(0) != SQLITE_OK) {
        die("mcsafe_sqlite_register", NULL);
    }
    struct connection c[CONFIGS];
    for (int k = 0; k < CONFIGS; k++) {
        c[k] = open_config(path, k);
        scan(&c[k]); /* the file into the page cache, the mappings' page tables */
        lookups(&c[k], 1, per_round);
    }
    double look[CONFIGS][64], full[CONFIGS][64], narrow[CONFIGS][64];
    for (int r = 0; r < rounds; r++) {
        for (int j = 0; j < CONFIGS; j++) {
            int k = (r + j) % CONFIGS;
            look[k][r] = lookups(&c[k], 1000 + (uint64_t)r, per_round);
            full[k][r] = scan(&c[k]);
            narrow[k][r] = column_sum(&c[k]);
        }
    }
    double lookup_qps[CONFIGS], scan_qps[CONFIGS], column_qps[CONFIGS];
    for (int k = 0; k < CONFIGS; k++) {
        lookup_qps[k] = per_round / median(look[k], rounds);
        scan_qps[k] = 1.0 / median(full[k], rounds);
        column_qps[k] = 1.0 / median(narrow[k], rounds);
        sqlite3_finalize(c[k].lookup);
        sqlite3_finalize(c[k].scan);
        sqlite3_finalize(c[k].column);
        sqlite3_close(c[k].db);
    }
    printf("SQLite %s, 50,000 rows of 1000 bytes, cache_size=-2000, %d rounds (medians), %d lookups a round:\n",
           sqlite3_libversion(), rounds, per_round);
    printf("  %-12s %14s %12s %14s\n", "", "lookups/s", "scans/s", "sum(n)s/s");
    for (int k = 0; k < CONFIGS; k++) {
        printf("  %-12s %14.0f %12.2f %14.2f\n", names[k], lookup_qps[k], scan_qps[k], column_qps[k]);
    }
    int met = 1;
    const char *what[2] = {"point lookups", "full scan"};
    for (int w = 0; w < 2; w++) {
        double *q = w == 0 ? lookup_qps : scan_qps;
        double vs_mmap = q[0] / q[1], vs_pread = q[0] / q[2];
        int ok = vs_mmap >= 0.9 && vs_pread > 1.0;
        met &= ok;
        printf("  %s: mcsafe/mmap %.2f (goal >= 0.9), mcsafe/pread %.2f (goal > 1): %s\n", what[w], vs_mmap,
               vs_pread, ok ? "met" : "NOT met");
    }
    /* No goal: a copying VFS moves 4 KiB for every page, where SQLite's mmap
     * mode reads the few bytes of each it needs in place. */
    printf("  sum(n) over the table (no goal): mcsafe/mmap %.2f, mcsafe/pread %.2f\n", column_qps[0] / column_qps[1],
           column_qps[0] / column_qps[2]);
    return met ? 0 : 1;
}
