//! The fuzz checks on stable Rust, without libFuzzer: the seeds pass, and every saved
//! input (corpus and crash artifacts) replays. `ROAMHUB_FUZZ_WRITE_SEEDS=1` also writes the
//! seeds to `corpus/<target>/seed-<label>`.

use std::path::{Path, PathBuf};

use roamhub_fuzz::{public_messages, raft_entry_apply, raft_messages, seeds, signed_bytes};

fn check_of(target: &str) -> fn(&[u8]) {
    match target {
        "public_messages" => public_messages::check,
        "raft_entry_apply" => raft_entry_apply::check,
        "signed_bytes" => signed_bytes::check,
        "raft_messages" => raft_messages::check,
        other => panic!("no fuzz target {other}"),
    }
}

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Proves every seed passes its target's check, and writes them when asked.
#[test]
fn seeds_pass_their_checks() {
    let write = std::env::var("ROAMHUB_FUZZ_WRITE_SEEDS").is_ok_and(|v| v == "1");
    for seed in seeds::all() {
        check_of(seed.target)(&seed.bytes);
        if write {
            let dir = fuzz_dir().join("corpus").join(seed.target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("seed-{}", seed.label)), &seed.bytes).unwrap();
        }
    }
}

/// Proves every saved input, crash artifacts included, passes: a regression replay.
#[test]
fn saved_inputs_replay() {
    let mut failing = Vec::new();
    for target in ["public_messages", "raft_entry_apply", "signed_bytes", "raft_messages"] {
        for folder in ["corpus", "artifacts"] {
            let dir = fuzz_dir().join(folder).join(target);
            failing.extend(replay(&dir, check_of(target)));
        }
    }
    assert!(failing.is_empty(), "inputs that fail their checks: {failing:#?}");
}

/// The inputs in `dir` that fail `check`.
fn replay(dir: &Path, check: fn(&[u8])) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut failing = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| check(&bytes)).is_err() {
            failing.push(path);
        }
    }
    failing
}
