//! `cargo bench -p mcsafe-redb [-- --quick]`: redb random point reads,
//! McsafeBackend against redb's FileBackend (pread), side by side in one run.
//!
//! Two identical database files (200,000 keys, 100-byte values, about 35 MB),
//! both in the page cache; each opened with a 4 MiB redb cache, so that most
//! lookups miss it and read their leaf through the backend, as a database much
//! larger than its cache does. Rounds alternate the two (order flipping each
//! round), each round the same random keys for both; medians over the rounds.
//! Ratio = FileBackend's time / McsafeBackend's (goal > 1: faster). Exits 1
//! when the goal is not met. Pin it for figures:
//! `chrt -f 50 taskset -c 1 cargo bench -p mcsafe-redb`.

use std::fs::OpenOptions;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mcsafe_redb::McsafeBackend;
use redb::backends::FileBackend;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("data");
const KEYS: u64 = 200_000;
const CACHE: usize = 4 << 20;

fn value(key: u64) -> [u8; 100] {
    let mut v = [0u8; 100];
    for (i, b) in v.iter_mut().enumerate() {
        *b = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (i % 8 * 8)) as u8 ^ i as u8;
    }
    v
}

/// xorshift64*: the same key sequence for both backends.
fn keys(seed: u64, n: usize) -> Vec<u64> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d) % KEYS
        })
        .collect()
}

fn open_file(path: &Path) -> std::fs::File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

fn build(path: &Path) {
    let _ = std::fs::remove_file(path);
    let db = Database::builder()
        .create_with_backend(FileBackend::new(open_file(path)))
        .unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(TABLE).unwrap();
        // In a scattered order, as a table filled over time is laid out.
        for key in keys(7, KEYS as usize * 2) {
            table.insert(key, value(key).as_slice()).unwrap();
        }
        for key in 0..KEYS {
            table.insert(key, value(key).as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
}

/// Time of `lookups` in one read transaction, every value checked.
fn run(db: &Database, lookups: &[u64]) -> Duration {
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(TABLE).unwrap();
    let start = Instant::now();
    for &key in lookups {
        let guard = table.get(key).unwrap().unwrap();
        black_box(guard.value()[0]);
    }
    let elapsed = start.elapsed();
    let check = lookups[lookups.len() / 2];
    assert_eq!(table.get(check).unwrap().unwrap().value(), value(check));
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, per_round) = if quick { (5, 20_000) } else { (15, 100_000) };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let paths = [dir.join("redb-bench-mcsafe"), dir.join("redb-bench-file")];
    build(&paths[0]);
    std::fs::copy(&paths[0], &paths[1]).unwrap();
    let size = std::fs::metadata(&paths[0]).unwrap().len();
    let mcsafe = Database::builder()
        .set_cache_size(CACHE)
        .create_with_backend(McsafeBackend::open(open_file(&paths[0])).unwrap())
        .unwrap();
    let file = Database::builder()
        .set_cache_size(CACHE)
        .create_with_backend(FileBackend::new(open_file(&paths[1])))
        .unwrap();
    // Warm both: the files into the page cache, the mappings' page tables.
    let warm = keys(1, KEYS as usize);
    run(&mcsafe, &warm);
    run(&file, &warm);
    let (mut t_mcsafe, mut t_file) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let lookups = keys(100 + round as u64, per_round);
        if round % 2 == 0 {
            t_mcsafe.push(run(&mcsafe, &lookups));
            t_file.push(run(&file, &lookups));
        } else {
            t_file.push(run(&file, &lookups));
            t_mcsafe.push(run(&mcsafe, &lookups));
        }
    }
    let (m, f) = (median(t_mcsafe), median(t_file));
    let per = |d: Duration| d.as_secs_f64() * 1e9 / per_round as f64;
    let ratio = f.as_secs_f64() / m.as_secs_f64();
    println!(
        "redb random reads ({KEYS} keys, {:.1} MB file, {} MiB cache, {rounds} rounds of {per_round} lookups, medians):",
        size as f64 / 1e6,
        CACHE >> 20
    );
    println!("  McsafeBackend  {:8.0} ns/lookup", per(m));
    println!("  FileBackend    {:8.0} ns/lookup", per(f));
    let met = ratio > 1.0;
    println!(
        "  ratio FileBackend/McsafeBackend = {ratio:.2} (goal > 1: {})",
        if met { "met" } else { "NOT met" }
    );
    drop((mcsafe, file));
    for path in &paths {
        let _ = std::fs::remove_file(path);
    }
    if !met {
        std::process::exit(1);
    }
}
