//! Build script: the build's id (`TOLLGATE_BUILD`), a hash of what both
//! the server and the browser's WebAssembly are compiled from: the Rust
//! sources and fixtures, `Cargo.toml`, `Cargo.lock` and the compiler flags
//! in `.cargo/config.toml`. An open page compares it with the server's
//! (the live stream's `hello`): once the panel was upgraded, the page's
//! copy no longer reads what the server sends (postcard names no fields),
//! and the page reloads instead.
//!
//! FNV-1a, not `DefaultHasher`, so that replicas built by different
//! compilers from the same sources agree. Editor files (names starting
//! with `.`, ending in `~` or `.swp`) are left out.

use std::path::{Path, PathBuf};

const INPUTS: [&str; 4] = ["src", "Cargo.toml", "Cargo.lock", ".cargo/config.toml"];

fn wanted(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(".");
    !(name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp"))
}

fn files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_owned());
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if wanted(&path) {
            files(&path, out);
        }
    }
}

fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for byte in bytes {
        *hash ^= u64::from(*byte);
        *hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

fn main() {
    let mut paths = Vec::new();
    for input in INPUTS {
        println!("cargo:rerun-if-changed={input}");
        files(Path::new(input), &mut paths);
    }
    paths.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325;
    for path in paths {
        fnv1a(&mut hash, path.to_string_lossy().as_bytes());
        fnv1a(&mut hash, &[0]);
        fnv1a(&mut hash, &std::fs::read(&path).unwrap_or_default());
        fnv1a(&mut hash, &[0]);
    }
    println!("cargo:rustc-env=TOLLGATE_BUILD={hash:016x}");
}
