//! What the snapshot fuzz targets share: the newest generation's files of
//! a real snapshot, and planting changed ones as a new generation with
//! right checksums (so that the fuzzer gets past them).

use std::path::{Path, PathBuf};

use chunky::Generations;

/// A generation's files (name, bytes) and metadata.
pub type Snapshot = (Vec<(String, Vec<u8>)>, Vec<u8>);

/// The newest generation in `dir`.
pub fn newest(dir: &Path) -> Snapshot {
    let newest = Generations::open(dir, 2)
        .unwrap()
        .newest()
        .unwrap()
        .unwrap();
    let files = (newest.files.iter())
        .map(|f| (f.name.clone(), newest.read(&f.name).unwrap().to_vec()))
        .collect();
    (files, newest.meta.clone())
}

/// XORs `patch` into `target` from byte `at` (what lies beyond its end is
/// left out).
pub fn xor_at(target: &mut [u8], at: usize, patch: &[u8]) {
    for (k, byte) in patch.iter().enumerate() {
        if let Some(old) = target.get_mut(at + k) {
            *old ^= byte;
        }
    }
}

/// Writes `files` and `meta` as generation 1 of a fresh directory named
/// after `name` and this process, and returns it.
pub fn plant(name: &str, files: &[(String, Vec<u8>)], meta: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let refs: Vec<(&str, &[u8])> = (files.iter())
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    Generations::open(&dir, 2)
        .unwrap()
        .write(1, meta, &refs)
        .unwrap();
    dir
}
