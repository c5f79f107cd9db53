//! Coverage-guided fuzzing of chunky's snapshot generations: any bytes
//! planted as a generation's `MANIFEST` (with its trailing CRC-32 made
//! right when the first input byte is even, so that the fuzzer gets past
//! the checksum to the entries) load as the generation or give an error,
//! never a panic, and never a generation whose files differ from what the
//! manifest says.
//!
//! `cd fuzz && CARGO_BUILD_JOBS=1 cargo +nightly fuzz run generation_manifest -- -max_total_time=60`
#![no_main]

use chunky::Generations;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("kay-fuzz-gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let generation = dir.join(format!("gen-{:020}", 1));
    std::fs::create_dir_all(&generation).unwrap();
    // Two real files the manifest may name.
    std::fs::write(generation.join("a"), b"hello").unwrap();
    std::fs::write(generation.join("b.bin"), [7u8; 100]).unwrap();
    let mut manifest = body.to_vec();
    if mode % 2 == 0 {
        manifest.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    }
    std::fs::write(generation.join("MANIFEST"), &manifest).unwrap();
    if let Ok(Some(loaded)) = Generations::open(&dir, 2).unwrap().newest() {
        for file in &loaded.files {
            let bytes = loaded.read(&file.name).expect("a checked generation reads");
            assert_eq!(bytes.len() as u64, file.len);
            assert_eq!(crc32fast::hash(&bytes), file.crc);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
});
