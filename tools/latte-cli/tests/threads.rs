//! `--threads` and `--chunk` on run, perplexity and bench: the output is the
//! same bytes for every thread count and chunk size (the products split by
//! rows, the prompt fed in chunks), and bad values are clear errors.

mod common;

use common::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/latte-micro");
const PROMPT: &str = "It was a dark and stormy night; the rain fell in torrents, except at \
occasional intervals, when it was checked by a violent gust of wind";

fn model(ty: &str) -> String {
    format!("{DIR}/latte-micro-{ty}.gguf")
}

#[test]
fn run_output_is_the_same_for_every_thread_count_and_chunk() {
    for ty in ["q4_0", "f32"] {
        let m = model(ty);
        let run = |threads: &str, chunk: &str| {
            ok(&latte([
                "run",
                "-m",
                &m,
                "-p",
                PROMPT,
                "-n",
                "40",
                "--seed",
                "3",
                "--threads",
                threads,
                "--chunk",
                chunk,
            ]))
        };
        let want = run("1", "1");
        assert!(want.starts_with(PROMPT) && want.len() > PROMPT.len() + 20);
        for (threads, chunk) in [("1", "64"), ("2", "7"), ("3", "64"), ("4", "2")] {
            assert_eq!(
                run(threads, chunk),
                want,
                "{ty}: --threads {threads} --chunk {chunk}"
            );
        }
        // The default thread count too.
        let out = ok(&latte([
            "run", "-m", &m, "-p", PROMPT, "-n", "40", "--seed", "3",
        ]));
        assert_eq!(out, want, "{ty}: default threads");
    }
}

#[test]
fn saved_state_is_the_same_for_every_thread_count() {
    let dir = TempDir::new("threads-state");
    let m = model("q8_0");
    let mut states = Vec::new();
    for (threads, chunk) in [("1", "1"), ("2", "64"), ("3", "5")] {
        let file = dir.path(&format!("s{threads}.lts"));
        ok(&latte([
            "run",
            "-m",
            &m,
            "-p",
            PROMPT,
            "-n",
            "10",
            "-t",
            threads,
            "--chunk",
            chunk,
            "--save-state",
            file.to_str().unwrap(),
        ]));
        states.push(std::fs::read(&file).unwrap());
    }
    assert!(states.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn perplexity_is_the_same_for_every_thread_count_and_chunk() {
    let dir = TempDir::new("threads-ppl");
    let file = dir.path("text.txt");
    std::fs::write(&file, &PROMPT[..120]).unwrap();
    let f = file.to_str().unwrap();
    let (m, r) = (model("q4_0"), model("f32"));
    let ppl = |threads: &str, chunk: &str, ctx: &[&str]| {
        let mut a = vec![
            "perplexity",
            "--json",
            "-m",
            &m,
            "--reference",
            &r,
            "-f",
            f,
            "--threads",
            threads,
            "--chunk",
            chunk,
        ];
        a.extend_from_slice(ctx);
        let mut v: serde_json::Value = serde_json::from_str(&ok(&latte(a))).unwrap();
        // Everything but the file name must match exactly.
        v.as_object_mut().unwrap().remove("file");
        v
    };
    for (ctx, runs) in [
        (&[][..], &[("2", "7"), ("3", "4096")][..]),
        (&["--ctx", "50"][..], &[("2", "33")][..]),
    ] {
        let want = ppl("1", "1", ctx);
        assert!(want["bits_per_byte"].as_f64().unwrap() > 0.5);
        for &(threads, chunk) in runs {
            assert_eq!(
                ppl(threads, chunk, ctx),
                want,
                "--threads {threads} --chunk {chunk} {ctx:?}"
            );
        }
    }
}

#[test]
fn bench_reports_chunked_and_stepwise_prefill_and_threads() {
    for extra in [
        &["-t", "2"][..],
        &["-t", "2", "--spawn-per-product"][..],
        &["-t", "1"][..],
    ] {
        let m = model("q8_0");
        let mut a = vec![
            "bench",
            "-m",
            &m,
            "--max-ctx",
            "64",
            "--samples",
            "2",
            "--prefill",
            "20",
            "--decode",
            "3",
            "--chunk",
            "8",
        ];
        a.extend_from_slice(extra);
        let out = ok(&latte(a));
        for needle in [
            "prefill    20 tokens",
            "(chunks of 8, best of 3)",
            "stepwise   20 tokens",
            "chunked prefill",
            "decode     3 tokens",
        ] {
            assert!(out.contains(needle), "`{needle}` missing: {out}");
        }
        let threads = if extra.contains(&"2") {
            if extra.contains(&"--spawn-per-product") {
                "2 threads spawned per product"
            } else {
                "2 threads)"
            }
        } else {
            "1 thread)"
        };
        assert!(out.contains(threads), "`{threads}` missing: {out}");
    }
}

#[test]
fn bad_thread_counts_and_chunks_are_clear_errors() {
    let m = model("q8_0");
    for cmd in [
        vec!["run", "-m", &m, "-p", "x", "-n", "1"],
        vec!["perplexity", "-m", &m, "-f", "Cargo.toml"],
        vec!["bench", "-m", &m, "--max-ctx", "64"],
    ] {
        let with = |extra: &[&str]| {
            let mut a = cmd.clone();
            a.extend_from_slice(extra);
            latte(a)
        };
        fails(
            &with(&["--threads", "0"]),
            &["--threads 0", "at least one thread"],
        );
        fails(&with(&["-t", "-2"]), &["not a thread count"]);
        fails(&with(&["--threads", "many"]), &["not a thread count"]);
        fails(&with(&["--threads", "100000"]), &["from 1 to 1024"]);
        fails(&with(&["--chunk", "0"]), &["not a chunk size", "1 to 4096"]);
        fails(&with(&["--chunk", "4097"]), &["not a chunk size"]);
    }
}
