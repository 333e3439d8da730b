//! The tool under misuse, beyond `bad_inputs.rs`: model paths that are not
//! readable files, files of the wrong kind given to `run` and `logits`,
//! malformed numbers, closed or full outputs. Every case ends with a message
//! and a non-zero status (or success where nothing is wrong), never a panic
//! or a backtrace.

mod common;

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Stdio};

use common::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/latte-micro");

fn micro() -> String {
    format!("{DIR}/latte-micro-f32.gguf")
}

/// `fails`, with RUST_BACKTRACE set so that a panic would show a backtrace.
#[track_caller]
fn fails_bt(args: &[&std::ffi::OsStr], needles: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_latte"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("start latte");
    let err = fails(&o, needles);
    assert!(!err.contains("stack backtrace"), "backtrace printed: {err}");
    assert!(
        o.stdout.is_empty(),
        "nothing on stdout on failure: {:?}",
        stdout(&o)
    );
    err
}

#[test]
fn model_paths_that_are_not_readable_files() {
    let dir = TempDir::new("misuse-paths");
    let file = dir.path("plain.txt");
    std::fs::write(&file, b"text").unwrap();
    let dangling = dir.path("dangling.gguf");
    std::os::unix::fs::symlink(dir.path("gone.gguf"), &dangling).unwrap();
    let looped = dir.path("loop.gguf");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let odd = dir.path_os(OsString::from_vec(b"m\xffdel.gguf".to_vec()));
    let cases: Vec<(std::path::PathBuf, Vec<&str>)> = vec![
        (dir.path("absent.gguf"), vec!["absent.gguf", "cannot read"]),
        (dir.dir().to_path_buf(), vec!["is a directory"]),
        (
            file.join("model.gguf"),
            vec!["cannot read", "Not a directory"],
        ),
        (dangling, vec!["dangling.gguf", "cannot read"]),
        (looped, vec!["loop.gguf", "cannot read"]),
        (odd, vec!["m\u{fffd}del.gguf", "cannot read"]),
    ];
    for (path, needles) in &cases {
        for cmd in ["run", "logits"] {
            fails_bt(&[os(cmd), os("-m"), os(path), os("-p"), os("hi")], needles);
        }
        fails_bt(&[os("inspect"), os(path)], needles);
    }
    // Devices are not model files (mapping /dev/zero would read nothing).
    if std::path::Path::new("/dev/zero").exists() {
        let dev = std::path::PathBuf::from("/dev/zero");
        for cmd in ["run", "logits"] {
            fails_bt(
                &[os(cmd), os("-m"), os(&dev), os("-p"), os("hi")],
                &["/dev/zero", "not a regular file"],
            );
        }
        fails_bt(&[os("inspect"), os(&dev)], &["not a regular file"]);
        fails_bt(
            &[os("convert"), os(&dev), os("-o"), os(&dir.path("o.gguf"))],
            &["not a regular file"],
        );
    }
    // A valid model under a non-UTF-8 name runs.
    let odd = dir.path_os(OsString::from_vec(b"\xfe.gguf".to_vec()));
    std::fs::copy(micro(), &odd).unwrap();
    let out = ok(&latte([
        os("run"),
        os("-m"),
        os(&odd),
        os("-p"),
        os("A"),
        os("-n"),
        os("2"),
    ]));
    assert_eq!(out.len(), 3, "{out:?}");
}

#[test]
fn files_of_the_wrong_kind_for_run_and_logits() {
    let dir = TempDir::new("misuse-kinds");
    let model = std::fs::read(micro()).unwrap();
    let mut arch = model.clone();
    // general.architecture "latte" -> "llama" (same length).
    let at = arch
        .windows(5)
        .position(|w| w == b"latte")
        .expect("architecture string");
    arch[at..at + 5].copy_from_slice(b"llama");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.gguf", Vec::new(), "truncated"),
        (
            "text.gguf",
            b"Once upon a time there was a model file".to_vec(),
            "not a GGUF file",
        ),
        ("cut.gguf", model[..model.len() / 3].to_vec(), "truncated"),
        ("header.gguf", model[..24].to_vec(), "truncated"),
        ("llama.gguf", arch, "architecture"),
    ];
    for (name, bytes, needle) in cases {
        let p = dir.path(name);
        std::fs::write(&p, bytes).unwrap();
        for cmd in ["run", "logits"] {
            fails_bt(
                &[os(cmd), os("-m"), os(&p), os("-p"), os("hi")],
                &[name, needle],
            );
        }
    }
}

#[test]
fn malformed_flag_values() {
    let m = micro();
    for (flag, value, needle) in [
        ("-n", "1e3", "whole number"),
        ("-n", "99999999999999999999999", "whole number"),
        ("-n", "", "whole number"),
        ("--top-k", "abc", "whole number"),
        ("--top-k", "2.5", "whole number"),
        ("--temp", "", "not a number"),
        ("--temp", "0x10", "not a number"),
        ("--temp", "-0.0001", "temperature"),
        ("--temp", "1e39", "temperature"),
        ("--top-p", "-0.1", "top-p"),
        ("--top-p", "1e-50", "top-p"),
        ("--top-p", "inf", "top-p"),
        ("--repeat-penalty", "inf", "repeat penalty"),
        ("--repeat-penalty", "nan", "repeat penalty"),
        ("--repeat-last-n", "257", "repeat-last-n"),
        ("--seed", "18446744073709551616", "seed"),
        ("--seed", "1.5", "seed"),
    ] {
        fails_bt(
            &[
                os("run"),
                os("-m"),
                os(&m),
                os("-p"),
                os("A"),
                os(flag),
                os(value),
            ],
            &[needle],
        );
    }
    // A flag without its value, an unknown flag, an unknown command.
    fails_bt(
        &[os("run"), os("-m"), os(&m), os("-p"), os("A"), os("--temp")],
        &["--temp"],
    );
    fails_bt(
        &[
            os("run"),
            os("-m"),
            os(&m),
            os("-p"),
            os("A"),
            os("--frobnicate"),
        ],
        &["--frobnicate"],
    );
    fails_bt(&[os("generate")], &["generate"]);
    fails_bt(&[], &["Usage"]);
    // Non-UTF-8 where text is expected: --tokens and a flag value.
    let bad = OsString::from_vec(vec![0x31, 0xff]);
    fails_bt(
        &[
            os("logits"),
            os("-m"),
            os(&m),
            os("--tokens"),
            bad.as_os_str(),
        ],
        &["UTF-8"],
    );
    fails_bt(
        &[
            os("run"),
            os("-m"),
            os(&m),
            os("-p"),
            os("A"),
            os("--temp"),
            bad.as_os_str(),
        ],
        &["UTF-8"],
    );
    // A token id past u32 and a negative one.
    fails_bt(
        &[
            os("logits"),
            os("-m"),
            os(&m),
            os("--tokens"),
            os("1,99999999999"),
        ],
        &["not a token id"],
    );
    fails_bt(
        &[os("logits"), os("-m"), os(&m), os("--tokens"), os("-1")],
        &["not a token id"],
    );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    for args in [
        vec!["run", "-m", &micro(), "-p", "Hello", "-n", "400"],
        vec!["logits", "-m", &micro(), "-p", "Hello world, hello world"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_latte"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start latte");
        let mut out = child.stdout.take().unwrap();
        let mut first = [0u8; 1];
        out.read_exact(&mut first).unwrap();
        drop(out);
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(o.status.code(), Some(101), "{args:?}: {err}");
    }
}

#[test]
fn a_full_disk_on_stdout_is_an_error() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // not every system has /dev/full
    };
    let o = Command::new(env!("CARGO_BIN_EXE_latte"))
        .args(["run", "-m", &micro(), "-p", "Hi", "-n", "4"])
        .stdout(full)
        .output()
        .expect("start latte");
    fails(&o, &["cannot write to stdout"]);
}
