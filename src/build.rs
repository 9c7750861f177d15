//! Build script: the build's id (`TOLLGATE_BUILD`), a hash of the sources
//! and the lock file that both the server and the browser's WebAssembly are
//! compiled from. An open page compares it with the server's (the live
//! stream's `hello`): once the panel was upgraded, the page's copy no
//! longer reads what the server sends (postcard names no fields), and the
//! page reloads instead.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.lock");
    let mut paths = vec![PathBuf::from("Cargo.lock")];
    files(Path::new("src"), &mut paths);
    paths.sort();
    let mut hash = DefaultHasher::new();
    for path in paths {
        path.hash(&mut hash);
        std::fs::read(&path).unwrap_or_default().hash(&mut hash);
    }
    println!("cargo:rustc-env=TOLLGATE_BUILD={:016x}", hash.finish());
}
