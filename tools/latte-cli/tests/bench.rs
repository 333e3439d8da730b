//! `latte bench`: the report, the CSV and SVG files, and bad flags. (Timing
//! numbers are not checked here; this is not a timed test.)

mod common;

use common::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/latte-micro");

#[test]
fn short_bench_writes_csv_and_svg() {
    let dir = TempDir::new("bench");
    let (csv, svg) = (dir.path("lat.csv"), dir.path("lat.svg"));
    let model = format!("{DIR}/latte-micro-q4_0.gguf");
    let out = ok(&latte([
        os("bench"),
        os("-m"),
        os(&model),
        os("--max-ctx"),
        os("128"),
        os("--samples"),
        os("3"),
        os("--prefill"),
        os("8"),
        os("--decode"),
        os("4"),
        os("--kernels"),
        os("scalar"),
        os("--csv"),
        os(&csv),
        os("--svg"),
        os(&svg),
    ]));
    for needle in [
        "kernels scalar",
        "prefill    8 tokens",
        "decode     4 tokens",
        "flatness",
    ] {
        assert!(out.contains(needle), "`{needle}` missing: {out}");
    }
    let csv = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "context",
            "median_us",
            "mean_us",
            "min_us",
            "max_us",
            "samples",
            "state_bytes"
        ]
    );
    assert_eq!(rows.len(), 3, "{csv}");
    for (row, ctx) in rows[1..].iter().zip(["64", "128"]) {
        assert_eq!(row[0], ctx);
        assert_eq!(row[5], "3");
        // latte-micro: 6 layers x (64 x 32 + 2 x 64) floats, at any context.
        assert_eq!(row[6], (6 * (64 * 32 + 2 * 64) * 4).to_string());
        let v: Vec<f64> = row[1..5].iter().map(|x| x.parse().unwrap()).collect();
        assert!(v.iter().all(|x| *x > 0.0), "{row:?}");
        assert!(
            v[2] <= v[0] && v[0] <= v[3],
            "min <= median <= max: {row:?}"
        );
    }
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<circle").count(), 2);
    assert!(svg.contains("latte-micro-q4_0.gguf (scalar kernels)"));
}

#[test]
fn bad_bench_flags_are_clear_errors() {
    let dir = TempDir::new("bench-errors");
    let model = format!("{DIR}/latte-micro-f32.gguf");
    fails(
        &latte(["bench", "-m", &model, "--max-ctx", "100"]),
        &["power of two >= 64"],
    );
    fails(&latte(["bench", "-m", &model, "--samples", "0"]), &[">= 1"]);
    fails(
        &latte(["bench", "-m", &model, "--kernels", "mmx"]),
        &["--kernels mmx", "not a kernel path"],
    );
    let missing = dir.path("no/such/dir/x.csv");
    fails(
        &latte([os("bench"), os("-m"), os(&model), os("--csv"), os(&missing)]),
        &["does not exist"],
    );
    fails(
        &latte([
            os("bench"),
            os("-m"),
            os(&model),
            os("--svg"),
            os(dir.dir()),
        ]),
        &["is a directory"],
    );
}
