//! The bytes `npuopt optimize` writes are pinned: for every committed
//! fixture (`fixtures/**/*.onnx`) and each of a few option sets, the
//! FNV-1a 64 hash of the output file (or the run's exit code, for a
//! fixture it rejects) must equal the one recorded in
//! `tests/output_hashes.txt`. Performance work must not change what is
//! written; a change that means to (a new rewrite, a fixed bug) updates
//! the file and says why in its commit.
//!
//! The runs go through the command's own entry point (`run_argv`), so the
//! input is read, optimized and written exactly as `npuopt optimize` does.
//! Regenerate with `NPUOPT_BLESS_HASHES=1 cargo test --test output_hashes`
//! and review the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Option sets: a name for the hashes file and the extra flags.
const RUNS: [(&str, &[&str]); 4] = [
    ("none", &["--passes", "none"]),
    ("default", &[]),
    ("ethos-u55-256", &["--target", "ethos-u55-256"]),
    ("axera-m55h", &["--target", "axera-m55h"]),
];

fn hashes_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/output_hashes.txt")
}

fn fixtures() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "onnx") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    walk(&root.join("fixtures"), &mut files);
    files.sort();
    files
}

fn fnv(bytes: &[u8]) -> String {
    let mut h = npuopt::ir::hash::Fnv64::new();
    h.write(bytes);
    format!("{:016x}", h.finish())
}

/// `file run` → `hash` (or `exit N`) of one optimize run.
fn run_one(dir: &Path, input: &Path, run: &str, flags: &[&str]) -> String {
    let out = dir.join(format!(
        "{}.{run}.onnx",
        input.file_stem().unwrap().to_string_lossy()
    ));
    let mut argv = vec![
        "npuopt",
        "-q",
        "optimize",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--no-verify",
    ];
    argv.extend_from_slice(flags);
    let code = npuopt::cli::run_argv(argv);
    if code != 0 {
        assert!(!out.exists(), "a failed run wrote {}", out.display());
        return format!("exit {code}");
    }
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    fnv(&bytes)
}

fn compute() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let jobs: Vec<(PathBuf, &str, &[&str])> = fixtures()
        .into_iter()
        .flat_map(|f| RUNS.iter().map(move |(r, flags)| (f.clone(), *r, *flags)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((file, run, flags)) = jobs.get(i) else {
                    break;
                };
                let hash = run_one(dir.path(), file, run, flags);
                let key = format!(
                    "{} {run}",
                    file.strip_prefix(root).unwrap().to_string_lossy()
                );
                results.lock().unwrap().insert(key, hash);
            });
        }
    });
    results.into_inner().unwrap()
}

#[test]
fn optimize_writes_the_recorded_bytes_for_every_fixture() {
    let got = compute();
    assert!(got.len() >= 4 * 180, "only {} runs", got.len());
    let text: String = got.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
    if std::env::var_os("NPUOPT_BLESS_HASHES").is_some() {
        std::fs::write(hashes_file(), &text).unwrap();
        return;
    }
    let recorded = std::fs::read_to_string(hashes_file()).expect("tests/output_hashes.txt");
    let want: BTreeMap<String, String> = recorded
        .lines()
        .filter_map(|l| {
            let (key, hash) = l.rsplit_once(" ")?;
            // "exit N" has a space: keep it whole.
            match key.rsplit_once(' ') {
                Some((k, "exit")) => Some((k.to_string(), format!("exit {hash}"))),
                _ => Some((key.to_string(), hash.to_string())),
            }
        })
        .collect();
    let mut diffs = Vec::new();
    for (k, v) in &got {
        match want.get(k) {
            Some(w) if w == v => {}
            Some(w) => diffs.push(format!("{k}: recorded {w}, now {v}")),
            None => diffs.push(format!("{k}: not recorded (now {v})")),
        }
    }
    for k in want.keys().filter(|k| !got.contains_key(*k)) {
        diffs.push(format!("{k}: recorded, but the fixture is gone"));
    }
    assert!(
        diffs.is_empty(),
        "{} of {} outputs differ from tests/output_hashes.txt:\n{}",
        diffs.len(),
        got.len(),
        diffs.join("\n")
    );
}

/// The check itself can fail: a changed byte changes the hash.
#[test]
fn the_hash_sees_one_changed_byte() {
    let a = fnv(b"onnx model bytes");
    let b = fnv(b"onnx model bytez");
    assert_ne!(a, b);
}
