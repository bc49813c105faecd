//! Replays the checked-in fuzz corpus (fuzz/corpus/TARGET, seeds plus every crash ever found) through the
//! fuzz targets' entry points, so a regression fails `cargo test` without nightly or cargo-fuzz.

use std::path::PathBuf;

#[test]
fn every_corpus_input_passes_its_target() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0;
    for (target, run) in wasmcni::fuzzing::TARGETS {
        let dir = root.join(target);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no corpus for {target}");
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                panic!("fuzz target {target} fails on {}", input.display());
            }
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} corpus inputs");
}
