//! `latte perplexity`: bits per byte against a computation from `latte
//! logits` output done here, KL and same-top against a reference, windows,
//! and clear errors for bad input.

mod common;

use common::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/latte-micro");
const TEXT: &str = "It was a dark and stormy night; the rain fell in torrents.";

fn f32_model() -> String {
    format!("{DIR}/latte-micro-f32.gguf")
}

/// `latte logits -p text`: one row of logits per byte.
fn logits(model: &str, text: &str) -> Vec<Vec<f64>> {
    let out = ok(&latte(["logits", "-m", model, "-p", text]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("logits JSON");
    let rows: Vec<Vec<f64>> = serde_json::from_value(v["logits"].clone()).expect("rows");
    // The JSON holds the shortest decimal of each f32: back to its exact value.
    rows.into_iter()
        .map(|r| r.into_iter().map(|x| x as f32 as f64).collect())
        .collect()
}

/// Sum over positions of -ln p(next byte), computed here in f64 from logits.
fn nll(rows: &[Vec<f64>], text: &[u8]) -> f64 {
    rows.iter()
        .zip(&text[1..])
        .map(|(row, &next)| {
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            lse - row[next as usize]
        })
        .sum()
}

fn perplexity(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["perplexity", "--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(&latte(a))).expect("perplexity JSON")
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

#[test]
fn bits_per_byte_match_a_computation_from_the_logits() {
    let dir = TempDir::new("ppl-bits");
    let file = dir.path("text.txt");
    std::fs::write(&file, TEXT).unwrap();
    let model = f32_model();
    let rows = logits(&model, TEXT);
    let n = (TEXT.len() - 1) as f64;
    let want = nll(&rows, TEXT.as_bytes()) / n / std::f64::consts::LN_2;
    let got = perplexity(&["-m", &model, "-f", file.to_str().unwrap()]);
    assert_eq!(got["scored"], TEXT.len() - 1);
    assert_eq!(got["mode"], "continuous");
    let bpb = num(&got, "bits_per_byte");
    assert!((bpb - want).abs() <= 1e-9 * want, "{bpb} vs {want}");
    assert!((num(&got, "perplexity") - (want * std::f64::consts::LN_2).exp()).abs() < 1e-6);
    // A trained model does much better than uniform bytes (8 bits).
    assert!(bpb > 0.5 && bpb < 6.0, "{bpb}");

    // The text report says the same.
    let text = ok(&latte([
        "perplexity",
        "-m",
        &model,
        "-f",
        file.to_str().unwrap(),
    ]));
    assert!(text.contains(&format!("bits/byte   {want:.6}")), "{text}");

    // --max-bytes: the prefix only.
    let got = perplexity(&[
        "-m",
        &model,
        "-f",
        file.to_str().unwrap(),
        "--max-bytes",
        "20",
    ]);
    let want = nll(&rows[..19], &TEXT.as_bytes()[..20]) / 19.0 / std::f64::consts::LN_2;
    assert!((num(&got, "bits_per_byte") - want).abs() <= 1e-9 * want);
}

#[test]
fn windows_restart_from_the_initial_state() {
    let dir = TempDir::new("ppl-ctx");
    let file = dir.path("text.txt");
    std::fs::write(&file, TEXT).unwrap();
    let model = f32_model();
    // Windows of 16 bytes: 58 bytes = 16 + 16 + 16 + 10; each scores len - 1.
    let bytes = TEXT.as_bytes();
    let mut total = 0.0;
    let mut scored = 0;
    for w in bytes.chunks(16) {
        let s = std::str::from_utf8(w).unwrap();
        total += nll(&logits(&model, s), w);
        scored += w.len() - 1;
    }
    let want = total / scored as f64 / std::f64::consts::LN_2;
    let got = perplexity(&["-m", &model, "-f", file.to_str().unwrap(), "--ctx", "16"]);
    assert_eq!(got["scored"], scored);
    assert_eq!(got["mode"], "windows of 16 bytes");
    assert!((num(&got, "bits_per_byte") - want).abs() <= 1e-9 * want);
    // And it differs from the continuous score (the test can fail).
    let cont = perplexity(&["-m", &model, "-f", file.to_str().unwrap()]);
    assert!((num(&cont, "bits_per_byte") - want).abs() > 1e-6);
}

#[test]
fn a_model_against_itself_has_zero_kl_and_always_the_same_top() {
    let dir = TempDir::new("ppl-self");
    let file = dir.path("text.txt");
    std::fs::write(&file, TEXT).unwrap();
    let model = f32_model();
    let f = file.to_str().unwrap();
    let got = perplexity(&["-m", &model, "-f", f, "--reference", &model]);
    assert_eq!(num(&got, "kl_mean"), 0.0);
    assert_eq!(num(&got, "kl_max"), 0.0);
    assert_eq!(num(&got, "same_top_rate"), 1.0);
    assert_eq!(got["bits_per_byte"], got["reference_bits_per_byte"]);
    let text = ok(&latte([
        "perplexity",
        "-m",
        &model,
        "-f",
        f,
        "--reference",
        &model,
    ]));
    assert!(text.contains("same top    100.0000%"), "{text}");

    // A quantized model against f32: small but non-zero KL, computed here too.
    let q4 = format!("{DIR}/latte-micro-q4_0.gguf");
    let got = perplexity(&["-m", &q4, "-f", f, "--reference", &model]);
    let (p_rows, q_rows) = (logits(&model, TEXT), logits(&q4, TEXT));
    let ls = |row: &Vec<f64>| {
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        row.iter().map(|v| v - lse).collect::<Vec<f64>>()
    };
    let scored = TEXT.len() - 1;
    let mut kl = 0.0;
    let mut same = 0usize;
    let top = |r: &Vec<f64>| (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b });
    for (p, q) in p_rows.iter().zip(&q_rows).take(scored) {
        let (lp, lq) = (ls(p), ls(q));
        kl += lp
            .iter()
            .zip(&lq)
            .map(|(a, b)| a.exp() * (a - b))
            .sum::<f64>();
        same += usize::from(top(p) == top(q));
    }
    let kl = kl / scored as f64;
    let got_kl = num(&got, "kl_mean");
    assert!(
        got_kl > 0.0 && (got_kl - kl).abs() <= 1e-6 * kl.max(1e-3),
        "{got_kl} vs {kl}"
    );
    assert!((num(&got, "same_top_rate") - same as f64 / scored as f64).abs() < 1e-12);
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = TempDir::new("ppl-errors");
    let model = f32_model();
    let empty = dir.path("empty.txt");
    std::fs::write(&empty, "").unwrap();
    fails(
        &latte(["perplexity", "-m", &model, "-f", empty.to_str().unwrap()]),
        &["empty.txt is empty"],
    );
    let one = dir.path("one.txt");
    std::fs::write(&one, "a").unwrap();
    fails(
        &latte(["perplexity", "-m", &model, "-f", one.to_str().unwrap()]),
        &["one byte", "at least two"],
    );
    fails(
        &latte([
            "perplexity",
            "-m",
            &model,
            "-f",
            dir.path("missing.txt").to_str().unwrap(),
        ]),
        &["cannot read", "missing.txt"],
    );
    fails(
        &latte([
            "perplexity",
            "-m",
            &model,
            "-f",
            dir.dir().to_str().unwrap(),
        ]),
        &["is a directory"],
    );
    let text = dir.path("text.txt");
    std::fs::write(&text, TEXT).unwrap();
    let t = text.to_str().unwrap();
    fails(
        &latte(["perplexity", "-m", &model, "-f", t, "--ctx", "1"]),
        &["--ctx", ">= 2"],
    );
    fails(
        &latte(["perplexity", "-m", &model, "-f", t, "--max-bytes", "0"]),
        &["is empty"],
    );
    fails(
        &latte([
            "perplexity",
            "-m",
            dir.path("nope.gguf").to_str().unwrap(),
            "-f",
            t,
        ]),
        &["nope.gguf"],
    );
    fails(
        &latte(["perplexity", "-m", &model, "-f", t, "--reference", t]),
        &["text.txt", "cannot load the model"],
    );
    // A model that is not byte-level (the spec's tiny LM, V = 11).
    let st = write_st(&dir, "tiny.safetensors", &flax_tiny_lm(), &[]);
    let tiny = dir.path("tiny.gguf");
    ok(&latte([
        os("convert"),
        os(&st),
        os("-o"),
        os(&tiny),
        os("--heads"),
        os("2"),
    ]));
    fails(
        &latte([
            os("perplexity"),
            os("-m"),
            os(&model),
            os("-f"),
            os(&text),
            os("--reference"),
            os(&tiny),
        ]),
        &["vocabulary of 11 tokens", "byte-level"],
    );
}

/// `-ln p` of each scored byte of `text` run from the initial state, in
/// order: entry `p - 1` is the byte at position `p` (`p` bytes before it).
fn nll_by_position(model: &str, text: &str) -> Vec<f64> {
    let rows = logits(model, text);
    (1..text.len())
        .map(|p| nll(&rows[p - 1..p], &text.as_bytes()[p - 1..=p]))
        .collect()
}

fn buckets(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["buckets"].as_array().expect("buckets").clone()
}

/// The byte counts add up to the bytes scored, and the byte-weighted mean
/// of the buckets' bits/byte is the overall figure.
#[track_caller]
fn check_totals(got: &serde_json::Value) {
    let b = buckets(got);
    let bytes: u64 = b.iter().map(|x| x["bytes"].as_u64().unwrap()).sum();
    assert_eq!(bytes, got["scored"].as_u64().unwrap(), "{got}");
    let weighted: f64 = b
        .iter()
        .filter(|x| x["bytes"].as_u64().unwrap() > 0)
        .map(|x| x["bytes"].as_u64().unwrap() as f64 * num(x, "bits_per_byte"))
        .sum();
    let overall = num(got, "bits_per_byte");
    let mean = weighted / bytes as f64;
    assert!(
        (mean - overall).abs() <= 1e-12 * overall,
        "{mean} vs {overall}"
    );
}

#[test]
fn buckets_split_the_continuous_score_by_position() {
    let dir = TempDir::new("ppl-buckets");
    let file = dir.path("text.txt");
    std::fs::write(&file, TEXT).unwrap();
    let f = file.to_str().unwrap();
    let model = f32_model();
    let per_byte = nll_by_position(&model, TEXT);
    let got = perplexity(&["-m", &model, "-f", f, "--buckets", "16,32,1k"]);
    check_totals(&got);
    let b = buckets(&got);
    let ranges: Vec<&str> = b.iter().map(|x| x["range"].as_str().unwrap()).collect();
    assert_eq!(ranges, ["0-16", "16-32", "32-1k", "1k+"]);
    // Positions 1..15, 16..31, 32..57, none.
    for (x, (from, to)) in b.iter().zip([(1usize, 16usize), (16, 32), (32, 58)]) {
        assert_eq!(x["bytes"], to - from, "{x}");
        let want = per_byte[from - 1..to - 1].iter().sum::<f64>()
            / (to - from) as f64
            / std::f64::consts::LN_2;
        let bpb = num(x, "bits_per_byte");
        assert!((bpb - want).abs() <= 1e-9 * want, "{x}: {bpb} vs {want}");
    }
    assert_eq!(b[3]["bytes"], 0);
    assert_eq!(b[3]["from"], 1024);
    assert!(
        b[3]["to"].is_null() && b[3]["bits_per_byte"].is_null(),
        "{}",
        b[3]
    );

    // The text report: every range, `-` for the empty one, and the total.
    let text = ok(&latte([
        "perplexity",
        "-m",
        &model,
        "-f",
        f,
        "--buckets",
        "16,32,1k",
    ]));
    assert!(!text.contains("NaN") && !text.contains("nan"), "{text}");
    assert!(text.contains("since the start of the text"), "{text}");
    let row = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row: {text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<String>>()
    };
    assert_eq!(row("1k+")[1..], ["0", "-"]);
    assert_eq!(row("0-16")[1], "15");
    assert_eq!(
        row("all")[1..],
        ["57", &format!("{:.6}", num(&got, "bits_per_byte"))]
    );

    // Without a value: the default ranges; this short text lies in the first.
    let got = perplexity(&["-m", &model, "-f", f, "--buckets"]);
    check_totals(&got);
    let b = buckets(&got);
    let ranges: Vec<&str> = b.iter().map(|x| x["range"].as_str().unwrap()).collect();
    assert_eq!(
        ranges,
        ["0-256", "256-1k", "1k-4k", "4k-16k", "16k-64k", "64k+"]
    );
    assert_eq!(b[0]["bytes"], 57);
    assert_eq!(b[0]["bits_per_byte"], got["bits_per_byte"]);
    assert!(b[1..].iter().all(|x| x["bits_per_byte"].is_null()));
    // Without --buckets there is no table.
    let got = perplexity(&["-m", &model, "-f", f]);
    assert!(got.get("buckets").is_none(), "{got}");
}

#[test]
fn buckets_with_windows_count_from_each_reset() {
    let dir = TempDir::new("ppl-buckets-ctx");
    let file = dir.path("text.txt");
    std::fs::write(&file, TEXT).unwrap();
    let f = file.to_str().unwrap();
    let model = f32_model();
    // Windows of 16 bytes (16 + 16 + 16 + 10): positions 1..15 in each of
    // the first three, 1..9 in the last; buckets 0-8 and 8+.
    let (mut low, mut high) = ((0.0, 0usize), (0.0, 0usize));
    for w in TEXT.as_bytes().chunks(16) {
        let per_byte = nll_by_position(&model, std::str::from_utf8(w).unwrap());
        for (i, v) in per_byte.iter().enumerate() {
            let b = if i + 1 < 8 { &mut low } else { &mut high };
            b.0 += v;
            b.1 += 1;
        }
    }
    assert_eq!((low.1, high.1), (7 * 4, 8 * 3 + 2));
    let got = perplexity(&["-m", &model, "-f", f, "--ctx", "16", "--buckets", "8"]);
    check_totals(&got);
    let b = buckets(&got);
    for (x, (nll, n)) in b.iter().zip([low, high]) {
        assert_eq!(x["bytes"], n, "{x}");
        let want = nll / n as f64 / std::f64::consts::LN_2;
        let bpb = num(x, "bits_per_byte");
        assert!((bpb - want).abs() <= 1e-9 * want, "{x}: {bpb} vs {want}");
    }
    let text = ok(&latte([
        "perplexity",
        "-m",
        &model,
        "-f",
        f,
        "--ctx",
        "16",
        "--buckets",
        "8,16",
    ]));
    assert!(text.contains("since the start of its window"), "{text}");
    assert!(!text.contains("NaN"), "{text}");

    // With a reference: the buckets, and KL and same-top overall.
    let got = perplexity(&[
        "-m",
        &model,
        "-f",
        f,
        "--ctx",
        "16",
        "--buckets",
        "8",
        "--reference",
        &model,
    ]);
    check_totals(&got);
    assert_eq!(num(&got, "kl_mean"), 0.0);
}

#[test]
fn buckets_csv_and_svg() {
    let dir = TempDir::new("ppl-buckets-files");
    let file = dir.path("text.txt");
    std::fs::write(&file, TEXT).unwrap();
    let (csv, svg) = (dir.path("b.csv"), dir.path("b.svg"));
    let model = f32_model();
    let got = perplexity(&[
        "-m",
        &model,
        "-f",
        file.to_str().unwrap(),
        "--buckets",
        "16,32,1k",
        "--csv",
        csv.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0], ["range", "from", "to", "bytes", "bits_per_byte"]);
    assert_eq!(rows.len(), 5, "{csv}");
    assert_eq!(rows[1][..4], ["0-16", "0", "16", "15"]);
    assert_eq!(rows[4], ["1k+", "1024", "", "0", ""]);
    for (row, b) in rows[1..4].iter().zip(buckets(&got)) {
        let v: f64 = row[4].parse().unwrap();
        assert!((v - num(&b, "bits_per_byte")).abs() < 1e-6, "{row:?}");
    }
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(!svg.contains("NaN"), "{svg}");
    // A point per range with bytes, a tick per range.
    assert_eq!(svg.matches("<circle").count(), 3);
    assert!(svg.contains(">1k+</text>"), "{svg}");
    assert!(svg.contains("latte-micro-f32.gguf on text.txt"), "{svg}");
}

#[test]
fn bad_buckets_are_clear_errors() {
    let dir = TempDir::new("ppl-buckets-errors");
    let file = dir.path("text.txt");
    std::fs::write(&file, TEXT).unwrap();
    let f = file.to_str().unwrap();
    let model = f32_model();
    let run = |extra: &[&str]| {
        let mut a = vec!["perplexity", "-m", &model, "-f", f];
        a.extend_from_slice(extra);
        latte(a)
    };
    for (value, needles) in [
        ("4k,1k", &["`1k` after `4k`", "increase strictly"][..]),
        ("256,256", &["increase strictly"]),
        ("0", &["above 0"]),
        ("0,256", &["above 0"]),
        ("abc", &["`abc` is not a position"]),
        ("1.5k", &["`1.5k` is not a position"]),
        ("256,,1k", &["`` is not a position"]),
        ("", &["is not a position"]),
        ("99999999999999999999", &["is not a position"]),
    ] {
        let o = run(&["--buckets", value]);
        let err = fails(&o, needles);
        assert_eq!(o.status.code(), Some(2), "--buckets {value}: {err}");
        assert!(err.contains("--buckets"), "{err}");
    }
    // The files need the table.
    let o = run(&["--csv", dir.path("b.csv").to_str().unwrap()]);
    fails(&o, &["--buckets"]);
    assert_eq!(o.status.code(), Some(2));
    fails(
        &run(&[
            "--buckets",
            "--svg",
            dir.path("no/such/dir/b.svg").to_str().unwrap(),
        ]),
        &["does not exist"],
    );
    fails(
        &run(&["--buckets", "--csv", dir.dir().to_str().unwrap()]),
        &["is a directory"],
    );
}

#[test]
fn the_training_length_note_is_for_models_with_positions_only() {
    // 300 bytes: past both models' training length of 256.
    let text = "It was a dark and stormy night; the rain fell in torrents. ".repeat(5);
    let tmp = TempDir::new("note");
    let file = tmp.path("text.txt");
    std::fs::write(&file, &text).unwrap();
    let file = file.to_str().unwrap();
    let with = latte(["perplexity", "-m", &f32_model(), "-f", file]);
    ok(&with);
    assert!(stderr(&with).contains("past the model's training context of 256"));
    let decay = format!("{DIR}-decay/latte-micro-decay-q8_0.gguf");
    let without = latte(["perplexity", "-m", &decay, "-f", file]);
    ok(&without);
    assert!(
        !stderr(&without).contains("training context"),
        "{}",
        stderr(&without)
    );
    let run = latte([
        "run", "-m", &decay, "-p", "Hello", "-n", "300", "--seed", "1",
    ]);
    ok(&run);
    assert!(!stderr(&run).contains("training context"));
}
