/*
 * The "mcsafe" SQLite VFS: a shim over the default VFS whose main-database
 * reads come from a read-only shared mapping of the file, copied with
 * mcsafe_copy. A page that is gone (the file truncated under the connection,
 * a failed page-in, hardware poison) makes xRead return SQLITE_IOERR_READ and
 * sqlite3_log say which file and offset, where SQLite's own mmap mode
 * (PRAGMA mmap_size) dies by SIGBUS. Built into libmcsafe_sqlite.so by
 * `cargo xtask capi` (xtask/src/capi.rs); the interface is mcsafe_sqlite.h.
 *
 * What goes where:
 * - Files other than main databases (journals, the WAL, temporary files) are
 *   opened by the underlying VFS straight into the sqlite3_file SQLite gave
 *   us, with its own methods: they never pass through this file.
 * - A main database is a `struct mcsafe_file` followed by the underlying
 *   VFS's file (REAL()). Every method but xRead, xFileSize, xTruncate,
 *   xFileControl(MMAP_SIZE, VFSNAME), xFetch and xClose is a plain call down.
 * - The mapping: `size` bytes of the file as last seen, page-rounded. It
 *   follows the file: xFileSize (SQLite asks at the start of every read
 *   transaction) and xTruncate resize it, and a read that reaches past
 *   `size` asks for the size first. A file shrunk by someone else between two
 *   such looks is exactly the fault: the lost pages read as SQLITE_IOERR_READ.
 * - The mapping needs a descriptor of our own (the underlying VFS does not
 *   give out its own). Closing any descriptor of a file drops every POSIX
 *   lock this process holds on it, SQLite's included, so descriptors are
 *   shared per inode (`struct shared_fd`) and closed only when no connection
 *   of this VFS uses them and no process holds a lock on the file (F_OFD_GETLK
 *   sees the process's own POSIX locks); otherwise they wait for a later
 *   open or close to try again.
 * - SQLite's calls on one sqlite3_file are serialised by SQLite (connection
 *   or shared-cache mutex), so a file's mapping needs no lock of its own; the
 *   descriptor table, shared by all connections, has one.
 *
 * Changing it: cargo test -p mcsafe-sqlite-tests (builds and installs it
 * through cargo xtask capi, then runs the C programs of tests/c/ and the
 * sqlite3 shell), and for speed cargo xtask sqlite-bench.
 */
#define _GNU_SOURCE /* mremap, F_OFD_GETLK */

#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mcsafe.h"
#include "mcsafe_sqlite.h"

#define EXPORT __attribute__((visibility("default")))

/* linked_api.c */
const sqlite3_api_routines *mcsafe_sqlite_linked_api(void);

/* ---- descriptors, one per inode, shared by all connections ---- */

struct shared_fd {
    dev_t dev;
    ino_t ino;
    int fd;
    int users; /* mcsafe files using it; 0: waiting until it can be closed */
    struct shared_fd *next;
};

static pthread_mutex_t fds_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared_fd *fds;

/* Whether anyone (this process included) holds a POSIX or OFD lock on the
 * file: an OFD lock query on our own description conflicts with all of them.
 * If the query fails, assume so. */
static int file_is_locked(int fd) {
    struct flock query = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_OFD_GETLK, &query) != 0) {
        return 1;
    }
    return query.l_type != F_UNLCK;
}

/* Closes the unused descriptors that can be closed without dropping a lock.
 * Called with fds_lock held. */
static void sweep_unused(void) {
    struct shared_fd **link = &fds;
    while (*link) {
        struct shared_fd *entry = *link;
        if (entry->users == 0 && !file_is_locked(entry->fd)) {
            *link = entry->next;
            close(entry->fd);
            free(entry);
        } else {
            link = &entry->next;
        }
    }
}

/* Adds `fd` to the table with `users` users. Called with fds_lock held. On
 * allocation failure the descriptor stays open (leaked rather than closed
 * with locks that may be held). */
static struct shared_fd *add_fd(int fd, const struct stat *st, int users) {
    struct shared_fd *entry = malloc(sizeof *entry);
    if (!entry) {
        return NULL;
    }
    entry->dev = st->st_dev;
    entry->ino = st->st_ino;
    entry->fd = fd;
    entry->users = users;
    entry->next = fds;
    fds = entry;
    return entry;
}

/* A read-only descriptor of the regular file at `path`, or NULL (not a
 * regular file, cannot be opened): then reads go to the underlying VFS. */
static struct shared_fd *acquire_fd(const char *path) {
    struct stat before, opened;
    if (stat(path, &before) != 0 || !S_ISREG(before.st_mode)) {
        return NULL;
    }
    pthread_mutex_lock(&fds_lock);
    sweep_unused();
    for (struct shared_fd *entry = fds; entry; entry = entry->next) {
        if (entry->dev == before.st_dev && entry->ino == before.st_ino) {
            entry->users++;
            pthread_mutex_unlock(&fds_lock);
            return entry;
        }
    }
    /* O_NONBLOCK: a path that became a FIFO since the stat must not block. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct shared_fd *entry = NULL;
    if (fd >= 0) {
        if (fstat(fd, &opened) == 0 && S_ISREG(opened.st_mode) && opened.st_dev == before.st_dev &&
            opened.st_ino == before.st_ino) {
            entry = add_fd(fd, &opened, 1);
        } else {
            /* Another file than the one SQLite opened (renamed meanwhile):
             * not ours to map, and closing it now could drop locks. */
            add_fd(fd, &opened, 0);
        }
    }
    pthread_mutex_unlock(&fds_lock);
    return entry;
}

static void release_fd(struct shared_fd *entry) {
    pthread_mutex_lock(&fds_lock);
    entry->users--;
    sweep_unused();
    pthread_mutex_unlock(&fds_lock);
}

/* ---- the main-database file ---- */

struct mcsafe_file {
    sqlite3_file base;          /* pMethods: one of io_methods[] */
    const char *name;           /* SQLite keeps it valid until xClose */
    struct shared_fd *fd;       /* NULL: every read goes to the underlying VFS */
    unsigned char *map;         /* NULL while nothing is mapped */
    sqlite3_int64 map_len;      /* bytes mapped: `size` rounded up to pages */
    sqlite3_int64 size;         /* the file's size when last seen */
    sqlite3_int64 mmap_limit;   /* PRAGMA mmap_size, reported back as set */
    int lock;                   /* SQLITE_LOCK_*: the level the file holds */
    int size_unchecked;         /* a transaction began, SQLite has not asked for the size yet */
    int warned;                 /* logged that copies cannot run */
};

#define REAL(p) ((sqlite3_file *)(((struct mcsafe_file *)(p)) + 1))

static sqlite3_vfs mcsafe_vfs;
static sqlite3_int64 page_size = 4096;

/* Makes the mapping cover the file's first `size` bytes. On failure the old
 * mapping stays, and reads past it go to the underlying VFS. */
static void map_to(struct mcsafe_file *p, sqlite3_int64 size) {
    if (!p->fd || size < 0) {
        return;
    }
    sqlite3_int64 want = (size + page_size - 1) / page_size * page_size;
    if ((uint64_t)want > SIZE_MAX / 2) {
        return;
    }
    if (want != p->map_len) {
        void *map;
        if (want == 0) {
            munmap(p->map, (size_t)p->map_len);
            map = NULL;
        } else if (!p->map) {
            map = mmap(NULL, (size_t)want, PROT_READ, MAP_SHARED, p->fd->fd, 0);
        } else {
            map = mremap(p->map, (size_t)p->map_len, (size_t)want, MREMAP_MAYMOVE);
        }
        if (map == MAP_FAILED) {
            sqlite3_log(SQLITE_NOTICE, "mcsafe: cannot map %lld bytes of \"%s\" (%s): reads past %lld go to the underlying VFS",
                        want, p->name, strerror(errno), p->size);
            if (p->size > p->map_len) {
                p->size = p->map_len;
            }
            return;
        }
        p->map = map;
        p->map_len = want;
    }
    p->size = size;
}

/* Asks the underlying VFS for the size and follows it. */
static void refresh(struct mcsafe_file *p) {
    sqlite3_int64 size;
    if (REAL(p)->pMethods->xFileSize(REAL(p), &size) == SQLITE_OK) {
        map_to(p, size);
    }
}

static int mcsafe_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 offset) {
    struct mcsafe_file *p = (struct mcsafe_file *)file;
    if (p->fd && offset >= 0 && amt > 0 && offset + amt > p->size) {
        refresh(p); /* grown since (written through this or another connection)? */
    }
    if (!p->map || offset < 0 || amt <= 0 || offset + amt > p->size) {
        /* Past the end of the file (a short read, zero-filled, as SQLite
         * expects) or nothing mapped: the underlying VFS knows best. */
        return REAL(p)->pMethods->xRead(REAL(p), buf, amt, offset);
    }
    struct mcsafe_fault fault;
    int rc = mcsafe_copy(buf, p->map + offset, (size_t)amt, &fault);
    if (rc == 0) {
        return SQLITE_OK;
    }
    if (rc == -EIO && p->size_unchecked) {
        /* The first read of a transaction (the header's change counter),
         * before SQLite asked for the size: a file that shrank below it since
         * the last transaction has no lost page there, just an end, and the
         * underlying VFS says what reading past it gives (a short read). */
        refresh(p);
        if (offset + amt > p->size) {
            return REAL(p)->pMethods->xRead(REAL(p), buf, amt, offset);
        }
    }
    if (rc == -EIO) {
        /* A page SQLite knows is in the file is gone. */
        sqlite3_log(SQLITE_IOERR_READ,
                    "mcsafe: lost page in \"%s\" at file offset %lld: %s (read of %d bytes at offset %lld)",
                    p->name, offset + (sqlite3_int64)fault.copied, mcsafe_fault_kind_name(fault.kind), amt,
                    offset);
        return SQLITE_IOERR_READ;
    }
    /* Copies cannot run at all in this process (mcsafe_install's codes): read
     * as the underlying VFS does, which cannot fault. */
    if (!p->warned) {
        p->warned = 1;
        sqlite3_log(SQLITE_WARNING, "mcsafe: \"%s\" read through the underlying VFS: %s", p->name,
                    mcsafe_strerror(rc));
    }
    return REAL(p)->pMethods->xRead(REAL(p), buf, amt, offset);
}

static int mcsafe_close(sqlite3_file *file) {
    struct mcsafe_file *p = (struct mcsafe_file *)file;
    int rc = REAL(p)->pMethods->xClose(REAL(p));
    if (p->map) {
        munmap(p->map, (size_t)p->map_len);
        p->map = NULL;
    }
    if (p->fd) {
        /* After the underlying close: its locks are released by then. */
        release_fd(p->fd);
        p->fd = NULL;
    }
    return rc;
}

static int mcsafe_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 offset) {
    /* The shared mapping sees the bytes (one page cache); a write past its end
     * is mapped when a read first reaches it. */
    return REAL(file)->pMethods->xWrite(REAL(file), buf, amt, offset);
}

static int mcsafe_truncate(sqlite3_file *file, sqlite3_int64 size) {
    struct mcsafe_file *p = (struct mcsafe_file *)file;
    int rc = REAL(p)->pMethods->xTruncate(REAL(p), size);
    if (rc == SQLITE_OK) {
        refresh(p); /* the underlying VFS may round the size up to its chunk size */
    }
    return rc;
}

static int mcsafe_sync(sqlite3_file *file, int flags) {
    return REAL(file)->pMethods->xSync(REAL(file), flags);
}

static int mcsafe_file_size(sqlite3_file *file, sqlite3_int64 *size) {
    struct mcsafe_file *p = (struct mcsafe_file *)file;
    int rc = REAL(p)->pMethods->xFileSize(REAL(p), size);
    if (rc == SQLITE_OK) {
        p->size_unchecked = 0;
        if (*size != p->size) {
            map_to(p, *size);
        }
    }
    return rc;
}

static int mcsafe_lock(sqlite3_file *file, int level) {
    struct mcsafe_file *p = (struct mcsafe_file *)file;
    int rc = REAL(p)->pMethods->xLock(REAL(p), level);
    if (rc == SQLITE_OK) {
        if (p->lock == SQLITE_LOCK_NONE) {
            p->size_unchecked = 1; /* others may have changed the file meanwhile */
        }
        p->lock = level;
    }
    return rc;
}

static int mcsafe_unlock(sqlite3_file *file, int level) {
    struct mcsafe_file *p = (struct mcsafe_file *)file;
    int rc = REAL(p)->pMethods->xUnlock(REAL(p), level);
    if (rc == SQLITE_OK) {
        p->lock = level;
    }
    return rc;
}

static int mcsafe_check_reserved_lock(sqlite3_file *file, int *out) {
    return REAL(file)->pMethods->xCheckReservedLock(REAL(file), out);
}

static int mcsafe_file_control(sqlite3_file *file, int op, void *arg) {
    struct mcsafe_file *p = (struct mcsafe_file *)file;
    if (op == SQLITE_FCNTL_MMAP_SIZE) {
        /* The underlying file never maps (its limit stays 0, see mcsafe_open),
         * or SQLite would read its pages in place. Report the limit as set,
         * as the underlying VFS does: reads are mapped whatever it is. */
        sqlite3_int64 wanted = *(sqlite3_int64 *)arg;
        *(sqlite3_int64 *)arg = p->mmap_limit;
        if (wanted >= 0) {
            p->mmap_limit = wanted;
        }
        return SQLITE_OK;
    }
    int rc = REAL(p)->pMethods->xFileControl(REAL(p), op, arg);
    if (rc == SQLITE_OK && op == SQLITE_FCNTL_VFSNAME) {
        *(char **)arg = sqlite3_mprintf("mcsafe/%z", *(char **)arg);
    }
    return rc;
}

static int mcsafe_sector_size(sqlite3_file *file) {
    return REAL(file)->pMethods->xSectorSize(REAL(file));
}

static int mcsafe_device_characteristics(sqlite3_file *file) {
    return REAL(file)->pMethods->xDeviceCharacteristics(REAL(file));
}

/* The WAL index of a main database in WAL mode is reached through its file. */
static int mcsafe_shm_map(sqlite3_file *file, int region, int size, int extend, void volatile **out) {
    return REAL(file)->pMethods->xShmMap(REAL(file), region, size, extend, out);
}

static int mcsafe_shm_lock(sqlite3_file *file, int offset, int n, int flags) {
    return REAL(file)->pMethods->xShmLock(REAL(file), offset, n, flags);
}

static void mcsafe_shm_barrier(sqlite3_file *file) {
    REAL(file)->pMethods->xShmBarrier(REAL(file));
}

static int mcsafe_shm_unmap(sqlite3_file *file, int delete_flag) {
    return REAL(file)->pMethods->xShmUnmap(REAL(file), delete_flag);
}

/* No pointers into the mapping: SQLite would read pages in place, unguarded. */
static int mcsafe_fetch(sqlite3_file *file, sqlite3_int64 offset, int amt, void **out) {
    (void)file, (void)offset, (void)amt;
    *out = NULL;
    return SQLITE_OK;
}

static int mcsafe_unfetch(sqlite3_file *file, sqlite3_int64 offset, void *page) {
    (void)file, (void)offset, (void)page;
    return SQLITE_OK;
}

#define METHODS(version)                                                                           \
    {                                                                                              \
        version, mcsafe_close, mcsafe_read, mcsafe_write, mcsafe_truncate, mcsafe_sync,            \
            mcsafe_file_size, mcsafe_lock, mcsafe_unlock, mcsafe_check_reserved_lock,              \
            mcsafe_file_control, mcsafe_sector_size, mcsafe_device_characteristics,                \
            mcsafe_shm_map, mcsafe_shm_lock, mcsafe_shm_barrier, mcsafe_shm_unmap, mcsafe_fetch,   \
            mcsafe_unfetch                                                                         \
    }

/* By the underlying file's version: SQLite calls the shm methods (version 2)
 * and xFetch (version 3) only where the version says they exist, and so must
 * we, below. */
static const sqlite3_io_methods io_methods[3] = {METHODS(1), METHODS(2), METHODS(3)};

/* ---- the VFS ---- */

#define REAL_VFS(vfs) ((sqlite3_vfs *)(vfs)->pAppData)

static int mcsafe_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags) {
    sqlite3_vfs *real_vfs = REAL_VFS(vfs);
    if (!(flags & SQLITE_OPEN_MAIN_DB) || !name) {
        return real_vfs->xOpen(real_vfs, name, file, flags, out_flags);
    }
    struct mcsafe_file *p = (struct mcsafe_file *)file;
    memset(p, 0, sizeof *p);
    sqlite3_file *real = REAL(p);
    int rc = real_vfs->xOpen(real_vfs, name, real, flags, out_flags);
    if (rc != SQLITE_OK) {
        /* SQLite closes what a failed xOpen left methods on: that is ours. */
        if (real->pMethods) {
            real->pMethods->xClose(real);
        }
        file->pMethods = NULL;
        return rc;
    }
    int version = real->pMethods->iVersion;
    p->base.pMethods = &io_methods[(version < 1 ? 1 : version > 3 ? 3 : version) - 1];
    p->name = name;
    sqlite3_int64 no_map = 0;
    real->pMethods->xFileControl(real, SQLITE_FCNTL_MMAP_SIZE, &no_map);
    p->fd = acquire_fd(name);
    refresh(p);
    return SQLITE_OK;
}

static int mcsafe_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
    return REAL_VFS(vfs)->xDelete(REAL_VFS(vfs), name, sync_dir);
}

static int mcsafe_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
    return REAL_VFS(vfs)->xAccess(REAL_VFS(vfs), name, flags, out);
}

static int mcsafe_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out) {
    return REAL_VFS(vfs)->xFullPathname(REAL_VFS(vfs), name, n, out);
}

static void *mcsafe_dl_open(sqlite3_vfs *vfs, const char *path) {
    return REAL_VFS(vfs)->xDlOpen(REAL_VFS(vfs), path);
}

static void mcsafe_dl_error(sqlite3_vfs *vfs, int n, char *message) {
    REAL_VFS(vfs)->xDlError(REAL_VFS(vfs), n, message);
}

static void (*mcsafe_dl_sym(sqlite3_vfs *vfs, void *handle, const char *symbol))(void) {
    return REAL_VFS(vfs)->xDlSym(REAL_VFS(vfs), handle, symbol);
}

static void mcsafe_dl_close(sqlite3_vfs *vfs, void *handle) {
    REAL_VFS(vfs)->xDlClose(REAL_VFS(vfs), handle);
}

static int mcsafe_randomness(sqlite3_vfs *vfs, int n, char *out) {
    return REAL_VFS(vfs)->xRandomness(REAL_VFS(vfs), n, out);
}

static int mcsafe_sleep(sqlite3_vfs *vfs, int microseconds) {
    return REAL_VFS(vfs)->xSleep(REAL_VFS(vfs), microseconds);
}

static int mcsafe_current_time(sqlite3_vfs *vfs, double *out) {
    return REAL_VFS(vfs)->xCurrentTime(REAL_VFS(vfs), out);
}

static int mcsafe_get_last_error(sqlite3_vfs *vfs, int n, char *out) {
    return REAL_VFS(vfs)->xGetLastError(REAL_VFS(vfs), n, out);
}

/* Version 2 and 3 methods: present in mcsafe_vfs only when the underlying VFS
 * has them (mcsafe_vfs.iVersion is its version). */
static int mcsafe_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
    return REAL_VFS(vfs)->xCurrentTimeInt64(REAL_VFS(vfs), out);
}

static int mcsafe_set_system_call(sqlite3_vfs *vfs, const char *name, sqlite3_syscall_ptr call) {
    return REAL_VFS(vfs)->xSetSystemCall(REAL_VFS(vfs), name, call);
}

static sqlite3_syscall_ptr mcsafe_get_system_call(sqlite3_vfs *vfs, const char *name) {
    return REAL_VFS(vfs)->xGetSystemCall(REAL_VFS(vfs), name);
}

static const char *mcsafe_next_system_call(sqlite3_vfs *vfs, const char *name) {
    return REAL_VFS(vfs)->xNextSystemCall(REAL_VFS(vfs), name);
}

static sqlite3_vfs mcsafe_vfs = {
    .iVersion = 3,
    .zName = "mcsafe",
    .xOpen = mcsafe_open,
    .xDelete = mcsafe_delete,
    .xAccess = mcsafe_access,
    .xFullPathname = mcsafe_full_pathname,
    .xDlOpen = mcsafe_dl_open,
    .xDlError = mcsafe_dl_error,
    .xDlSym = mcsafe_dl_sym,
    .xDlClose = mcsafe_dl_close,
    .xRandomness = mcsafe_randomness,
    .xSleep = mcsafe_sleep,
    .xCurrentTime = mcsafe_current_time,
    .xGetLastError = mcsafe_get_last_error,
    .xCurrentTimeInt64 = mcsafe_current_time_int64,
    .xSetSystemCall = mcsafe_set_system_call,
    .xGetSystemCall = mcsafe_get_system_call,
    .xNextSystemCall = mcsafe_next_system_call,
};

static pthread_mutex_t register_lock = PTHREAD_MUTEX_INITIALIZER;

/* Registers the VFS over the current default one. `error`, if not NULL,
 * receives a message from sqlite3_mprintf on failure. */
static int register_vfs(int make_default, char **error) {
    pthread_mutex_lock(&register_lock);
    int rc = SQLITE_OK;
    if (sqlite3_vfs_find(mcsafe_vfs.zName)) {
        if (make_default) {
            rc = sqlite3_vfs_register(&mcsafe_vfs, 1);
        }
        goto done;
    }
    int installed = mcsafe_install();
    /* -EAGAIN: SIGBUS is blocked in this thread only; the handler is in. */
    if (installed != 0 && installed != -EAGAIN) {
        sqlite3_log(SQLITE_ERROR, "mcsafe: the VFS is not registered: %s", mcsafe_strerror(installed));
        if (error) {
            *error = sqlite3_mprintf("mcsafe: the VFS is not registered: %s", mcsafe_strerror(installed));
        }
        rc = SQLITE_ERROR;
        goto done;
    }
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real) {
        rc = SQLITE_ERROR;
        goto done;
    }
    long page = sysconf(_SC_PAGESIZE);
    if (page > 0) {
        page_size = page;
    }
    mcsafe_vfs.iVersion = real->iVersion < 3 ? real->iVersion : 3;
    mcsafe_vfs.szOsFile = (int)sizeof(struct mcsafe_file) + real->szOsFile;
    mcsafe_vfs.mxPathname = real->mxPathname;
    mcsafe_vfs.pAppData = real;
    rc = sqlite3_vfs_register(&mcsafe_vfs, make_default);
done:
    pthread_mutex_unlock(&register_lock);
    return rc;
}

EXPORT int mcsafe_sqlite_register(int make_default) {
    if (!sqlite3_api) {
        sqlite3_api = mcsafe_sqlite_linked_api();
        if (!sqlite3_api) {
            return SQLITE_ERROR;
        }
    }
    return register_vfs(make_default, NULL);
}

/* sqlite3_load_extension(db, ".../libmcsafe_sqlite", NULL, &error) and the
 * shell's ".load .../libmcsafe_sqlite" find this name from the file name. */
EXPORT int sqlite3_mcsafesqlite_init(sqlite3 *db, char **error, const sqlite3_api_routines *api) {
    (void)db;
    SQLITE_EXTENSION_INIT2(api);
    int rc = register_vfs(1, error);
    /* Stay loaded after this connection closes: the VFS outlives it. */
    return rc == SQLITE_OK ? SQLITE_OK_LOAD_PERMANENTLY : rc;
}
