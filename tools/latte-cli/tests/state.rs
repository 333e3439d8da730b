//! `latte run --save-state / --load-state`: a saved run continues exactly
//! where it stopped; bad state files are refused with a clear message.

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use common::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/latte-micro");

fn model() -> String {
    format!("{DIR}/latte-micro-f32.gguf")
}

fn run(args: &[&OsStr]) -> std::process::Output {
    let m = model();
    let mut all: Vec<&OsStr> = vec![os("run"), os("-m"), os(&m)];
    all.extend_from_slice(args);
    latte(all)
}

use std::ffi::OsStr;

#[test]
fn a_saved_run_continues_exactly() {
    let dir = TempDir::new("state-continue");
    let state = dir.path("s.lts");
    let prompt = "It was a dark";
    let sampling = ["--seed", "11", "--temp", "0.9", "--repeat-penalty", "1.2"];
    let mut whole_args = vec![os("-p"), os(prompt), os("-n"), os("48")];
    whole_args.extend(sampling.iter().map(os));
    let whole = ok(&run(&whole_args));

    let mut first_args = vec![os("-p"), os(prompt), os("-n"), os("20")];
    first_args.extend(sampling.iter().map(os));
    first_args.extend([os("--save-state"), os(&state)]);
    let first = run(&first_args);
    let first_out = ok(&first);
    assert!(
        stderr(&first).contains("state saved to"),
        "{}",
        stderr(&first)
    );
    // No prompt: the restored state is continued (the saved sampler too, so
    // no sampling flags are needed).
    let rest = run(&[os("--load-state"), os(&state), os("-n"), os("28")]);
    let rest_out = ok(&rest);
    assert!(
        stderr(&rest).contains("continued from position 33"),
        "{}",
        stderr(&rest)
    );
    assert_eq!(format!("{first_out}{rest_out}"), whole);
    assert_eq!(first_out.len(), prompt.len() + 20);

    // Saving again from a loaded state (into the same file) continues too.
    let part = ok(&run(&[
        os("--load-state"),
        os(&state),
        os("-n"),
        os("10"),
        os("--save-state"),
        os(&state),
    ]));
    let tail = ok(&run(&[os("--load-state"), os(&state), os("-n"), os("18")]));
    assert_eq!(format!("{first_out}{part}{tail}"), whole);
}

#[test]
fn a_prompt_after_a_loaded_state_is_fed_after_it() {
    let dir = TempDir::new("state-prompt");
    let state = dir.path("s.lts");
    let first = ok(&run(&[
        os("-p"),
        os("The night"),
        os("-n"),
        os("12"),
        os("--temp"),
        os("0"),
        os("--save-state"),
        os(&state),
    ]));
    // Greedy after "first + more" from a fresh start gives the same bytes as
    // greedy after "more" fed on top of the saved state.
    let resumed = ok(&run(&[
        os("--load-state"),
        os(&state),
        os("-p"),
        os(" and then"),
        os("-n"),
        os("16"),
    ]));
    let fresh = ok(&run(&[
        os("-p"),
        os(&format!("{first} and then")),
        os("-n"),
        os("16"),
        os("--temp"),
        os("0"),
    ]));
    assert!(resumed.starts_with(" and then"), "{resumed:?}");
    assert_eq!(resumed, fresh[first.len()..]);
    // A sampling flag replaces the saved setting: with --temp 0.9 and a seed
    // the continuation is no longer the greedy one.
    let sampled = ok(&run(&[
        os("--load-state"),
        os(&state),
        os("-p"),
        os(" and then"),
        os("-n"),
        os("40"),
        os("--temp"),
        os("1.5"),
        os("--seed"),
        os("5"),
    ]));
    let greedy = ok(&run(&[
        os("--load-state"),
        os(&state),
        os("-p"),
        os(" and then"),
        os("-n"),
        os("40"),
    ]));
    assert_ne!(sampled, greedy);
}

#[test]
fn bad_state_files_are_refused() {
    let dir = TempDir::new("state-bad");
    let state = dir.path("s.lts");
    ok(&run(&[
        os("-p"),
        os("Hello"),
        os("-n"),
        os("3"),
        os("--save-state"),
        os(&state),
    ]));
    let good = std::fs::read(&state).unwrap();
    let load = |path: &std::path::Path| run(&[os("--load-state"), os(path), os("-n"), os("3")]);

    // Another model (the f16 file of the same checkpoint).
    let f16 = format!("{DIR}/latte-micro-f16.gguf");
    fails(
        &latte([
            os("run"),
            os("-m"),
            os(&f16),
            os("--load-state"),
            os(&state),
        ]),
        &["s.lts", "saved from another model"],
    );
    // Truncated, corrupted, wrong version, big-endian, trailing bytes.
    let bad = dir.path("bad.lts");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good[..good.len() / 2].to_vec(), "truncated"),
        (good[..10].to_vec(), "truncated"),
        (Vec::new(), "truncated"),
        (
            {
                let mut b = good.clone();
                let n = b.len() - 100;
                b[n] ^= 4;
                b
            },
            "corrupted",
        ),
        (
            {
                let mut b = good.clone();
                b[4] = 9;
                b
            },
            "version 9",
        ),
        (
            {
                let mut b = good.clone();
                b.swap(6, 7);
                b
            },
            "big-endian",
        ),
        (
            {
                let mut b = good.clone();
                b.extend_from_slice(b"extra");
                b
            },
            "5 bytes follow",
        ),
        (
            b"not a state file at all".to_vec(),
            "not a Latte state snapshot",
        ),
    ];
    for (bytes, needle) in cases {
        std::fs::write(&bad, &bytes).unwrap();
        fails(&load(&bad), &["bad.lts", needle]);
    }
    // A model file given as a state file.
    fails(
        &load(std::path::Path::new(&model())),
        &["not a Latte state snapshot"],
    );
    // Missing file, directory, path through a file.
    fails(
        &load(&dir.path("absent.lts")),
        &["absent.lts", "cannot read"],
    );
    fails(&load(dir.dir()), &["is a directory"]);
    fails(&load(&state.join("x")), &["cannot read"]);
    // A device that never ends is cut off, not read into memory forever.
    if std::path::Path::new("/dev/zero").exists() {
        fails(
            &load(std::path::Path::new("/dev/zero")),
            &["too large to be a state file"],
        );
    }
    // Non-UTF-8 file names work.
    let odd = dir.path_os(OsString::from_vec(b"st\xffate.lts".to_vec()));
    std::fs::copy(&state, &odd).unwrap();
    ok(&load(&odd));
    fails(
        &load(&dir.path_os(OsString::from_vec(b"n\xffne.lts".to_vec()))),
        &["cannot read"],
    );
}

#[test]
fn bad_save_targets_are_refused_before_generating() {
    let dir = TempDir::new("state-target");
    let save = |target: &std::path::Path| {
        run(&[
            os("-p"),
            os("Hello"),
            os("-n"),
            os("3"),
            os("--save-state"),
            os(target),
        ])
    };
    let o = save(dir.dir());
    fails(&o, &["--save-state", "is a directory"]);
    assert!(o.stdout.is_empty(), "nothing is generated first");
    fails(
        &save(&dir.path("no/such/dir/s.lts")),
        &["--save-state", "does not exist"],
    );
    // A run without a prompt needs a state to continue from.
    fails(&run(&[os("-n"), os("3")]), &["--prompt"]);
    // An empty prompt is still refused with a loaded state.
    let state = dir.path("s.lts");
    ok(&save(&state));
    fails(
        &run(&[os("--load-state"), os(&state), os("-p"), os("")]),
        &["prompt is empty"],
    );
    // Invalid sampling flags with a loaded state.
    fails(
        &run(&[os("--load-state"), os(&state), os("--top-p"), os("2")]),
        &["top-p"],
    );
}
