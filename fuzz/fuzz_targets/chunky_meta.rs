//! Coverage-guided fuzzing of chunky's file decoding through its public API:
//! files planted in a storage directory (metadata of any structure, chunk
//! files with any header and contents, files of other idents) must make
//! `Arena`/`Queue`/`MultiArena`/`Value::open` return `Ok` or `Err`, never
//! panic or abort; and whatever opens can be used, flushed and reopened.
//!
//! `cd fuzz && TMPDIR=/dev/shm CARGO_BUILD_JOBS=1 cargo +nightly fuzz run chunky_meta corpus/chunky_meta seeds/chunky_meta -- -max_total_time=120 -timeout=10`
//!
//! The input format (an op byte, then one record per planted file, with
//! kinds that wrap fuzzed payloads in well-formed headers with correct
//! CRCs) is described in `chunky_files.rs`. `seeds/chunky_meta` holds files
//! written by really opening and filling each structure (`seedgen`), a
//! metadata file of another ident planted under the arena's name, and the
//! minimal inputs of two findings, fixed in 83c0c2e (see README.md):
//! `crash_queue_jump_chunk` (a panic in `Queue::peek`/`pop`) and
//! `slow_arena_free_cycle` (minutes in `Arena::open`).
//!
//! Files go to `$TMPDIR/kay-fuzz-chunky_meta-{pid}`, emptied before each
//! run; a later fuzzer process removes the directories of finished ones.
//! Structures that open are flushed (`fsync`), so a `TMPDIR` on tmpfs is
//! several times faster (`TMPDIR=/dev/shm`: ~5,000 runs/s instead of ~650).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "chunky_files.rs"]
mod chunky_files;

use chunky_files::{Plan, clear, open_and_use, plant};

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        const PREFIX: &str = "kay-fuzz-chunky_meta-";
        let tmp = std::env::temp_dir();
        // Remove the directories of earlier fuzzer processes that are gone
        // (`-fork` and `-jobs` start many), where `/proc` tells.
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let pid = name.to_str().and_then(|n| n.strip_prefix(PREFIX));
                if let Some(pid) = pid
                    && Path::new("/proc/self").exists()
                    && !Path::new("/proc").join(pid).exists()
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = tmp.join(format!("{PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&op, records)) = data.split_first() else {
        return;
    };
    let dir = dir();
    clear(dir).expect("emptying the fuzz directory");
    plant(records, dir).expect("writing the planted files");
    let outcome = open_and_use(Plan::from_op(op), dir);
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    if *VERBOSE.get_or_init(|| std::env::var_os("KAY_FUZZ_VERBOSE").is_some()) {
        eprintln!("{:?}: {outcome:?}", Plan::from_op(op));
    }
});
