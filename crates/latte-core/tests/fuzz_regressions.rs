//! The fuzz targets' bodies (`tools/fuzz/src/targets.rs`, included as is)
//! replayed on the seed corpus and on every input a fuzzer ever crashed on
//! (`tools/fuzz/regressions/<target>/`), so each fixed crash stays fixed in
//! the normal test suite. Fuzzing itself: tools/fuzz/FUZZING.md.

#[path = "../../../tools/fuzz/src/seeds.rs"]
mod seeds;
#[path = "../../../tools/fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

use latte_core::Model;

const FUZZ: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/fuzz");

fn body(target: &str) -> fn(&[u8]) {
    match target {
        "gguf_parse" => targets::gguf_parse,
        "load_and_step" => targets::load_and_step,
        "snapshot_restore" => targets::snapshot_restore,
        other => panic!("no target {other}"),
    }
}

#[test]
fn the_seed_corpus_is_valid_and_runs_clean() {
    for (name, file) in seeds::model_files() {
        let buf = targets::aligned(&file);
        Model::from_gguf(targets::aligned_bytes(&buf))
            .unwrap_or_else(|e| panic!("seed model {name} does not load: {e}"));
    }
    let committed = Path::new(FUZZ).join("../../models/latte-micro");
    let all = seeds::all(Some(&committed));
    for target in ["gguf_parse", "load_and_step", "snapshot_restore"] {
        assert!(
            all.iter().any(|(t, _, _)| *t == target),
            "no seeds for {target}"
        );
    }
    for (target, name, bytes) in all {
        eprintln!("{target}: seed {name}");
        body(target)(&bytes);
    }
}

#[test]
fn saved_crash_inputs_run_clean() {
    let mut n = 0;
    for target in ["gguf_parse", "load_and_step", "snapshot_restore"] {
        let dir = Path::new(FUZZ).join("regressions").join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
            .collect();
        files.sort();
        for f in files {
            eprintln!("{target}: {}", f.display());
            body(target)(&std::fs::read(&f).expect("read input"));
            n += 1;
        }
    }
    eprintln!("{n} saved inputs replayed");
}
