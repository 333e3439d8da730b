//! Sequence classifiers (bidirectional Latte) through `latte convert`, the
//! core's two modes and the `classify` / `eval-classifier` commands:
//!
//! * a small random classifier made by the reference trainer
//!   (`tests/data/classifier`, see its README) against the trainer's
//!   float64 logits;
//! * the buffered and constant-memory modes, every chunk size and (for
//!   quantized weights) every kernel path give the same bits;
//! * bad inputs and misuse are typed errors, never panics.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use latte_core::classifier::{ByteSource, Classifier, SliceSource, MAX_CHUNK};
use latte_core::{Error, KernelPath, Model};
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/classifier");

/// The two fixtures: the official classifier, and one with the byte n-gram
/// stem (an extension).
const FIXTURES: [&str; 2] = ["", "-stem"];

fn convert(dir: &TempDir, dtype: &str) -> PathBuf {
    convert_fixture(dir, dtype, "")
}

fn convert_fixture(dir: &TempDir, dtype: &str, which: &str) -> PathBuf {
    let out = dir.path(&format!("classifier{which}-{dtype}.gguf"));
    let input = Path::new(FIXTURE).join(format!("classifier{which}.safetensors"));
    ok(&latte([
        os("convert"),
        os(&input),
        os("-o"),
        os(&out),
        os("--dtype"),
        os(dtype),
    ]));
    out
}

fn as_bytes(words: &[u32], len: usize) -> &[u8] {
    &bytemuck::cast_slice::<u32, u8>(words)[..len]
}

fn golden() -> Vec<(Vec<u8>, Vec<f64>)> {
    golden_of("")
}

fn golden_of(which: &str) -> Vec<(Vec<u8>, Vec<f64>)> {
    let g: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURE).join(format!("golden{which}.json")))
            .expect("golden.json"),
    )
    .expect("golden json");
    g["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let input = c["input"]
                .as_array()
                .expect("input")
                .iter()
                .map(|b| b.as_u64().expect("byte") as u8)
                .collect();
            let logits = c["logits"]
                .as_array()
                .expect("logits")
                .iter()
                .map(|v| v.as_f64().expect("logit"))
                .collect();
            (input, logits)
        })
        .collect()
}

fn buffered(c: &Classifier<'_>, input: &[u8], chunk: usize) -> Result<Vec<f32>, Error> {
    let mut hidden = vec![0f32; c.hidden_len(input.len())];
    let mut summaries = vec![0f32; c.summaries_len()];
    let mut work = vec![0f32; c.work_len(chunk)];
    let mut logits = vec![0f32; c.config().n_classes];
    let r = c.classify_buffered(
        input,
        &mut hidden,
        &mut summaries,
        &mut work,
        chunk,
        &mut logits,
    )?;
    assert_eq!(r.tokens, input.len() as u64);
    Ok(logits)
}

fn stream(
    c: &Classifier<'_>,
    src: &mut dyn ByteSource,
    max: Option<u64>,
    chunk: usize,
) -> Result<Vec<f32>, Error> {
    let mut summaries = vec![0f32; c.summaries_len()];
    let mut work = vec![0f32; c.work_len(chunk)];
    let mut logits = vec![0f32; c.config().n_classes];
    c.classify_stream(src, max, &mut summaries, &mut work, chunk, &mut logits)?;
    Ok(logits)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn f32_matches_the_trainer_float64_logits() {
    let dir = TempDir::new("cls-f32");
    for which in FIXTURES {
        let path = convert_fixture(&dir, "f32", which);
        let len = std::fs::metadata(&path).expect("meta").len() as usize;
        let words = aligned(&path);
        let c = Classifier::from_gguf(as_bytes(&words, len)).expect("load");
        assert_eq!(c.label(1), Some("beta"));
        assert_eq!(c.config().conv_width, if which.is_empty() { 0 } else { 3 });
        let cases = golden_of(which);
        assert_eq!(cases.len(), 6);
        for (input, want) in &cases {
            for got in [
                buffered(&c, input, 64).expect("buffered"),
                stream(&c, &mut SliceSource::new(input), None, 64).expect("stream"),
            ] {
                for (g, w) in got.iter().zip(want) {
                    assert!(
                        (*g as f64 - w).abs() < 1e-4,
                        "{which} {} bytes: {g} vs golden {w}",
                        input.len()
                    );
                }
            }
        }
    }
}

#[test]
fn modes_chunks_and_kernel_paths_agree_bit_for_bit() {
    let dir = TempDir::new("cls-bits");
    for (which, dtype) in FIXTURES
        .iter()
        .flat_map(|w| ["f32", "q8_0", "q4_0"].map(|d| (*w, d)))
    {
        let cases = golden_of(which);
        let path = convert_fixture(&dir, dtype, which);
        let len = std::fs::metadata(&path).expect("meta").len() as usize;
        let words = aligned(&path);
        let base = Classifier::from_gguf(as_bytes(&words, len)).expect("load");
        let paths: Vec<KernelPath> = if dtype == "f32" {
            vec![base.kernels().path()]
        } else {
            KernelPath::ALL
                .iter()
                .copied()
                .filter(|p| p.kernels().is_some())
                .collect()
        };
        // The scalar path is the spec of the quantized products.
        let mut spec = base.clone();
        spec.set_kernels(latte_core::Kernels::scalar());
        for (input, want) in &cases {
            let reference = if dtype == "f32" {
                buffered(&base, input, 64).expect("buffered")
            } else {
                buffered(&spec, input, 64).expect("scalar")
            };
            // Quantized weights stay near the float64 reference.
            for (g, w) in reference.iter().zip(want) {
                let tol = if dtype == "q4_0" { 0.5 } else { 0.06 };
                assert!((*g as f64 - w).abs() < tol, "{which} {dtype}: {g} vs {w}");
            }
            for &p in &paths {
                let mut c = base.clone();
                c.set_kernels(p.kernels().expect("available"));
                assert_eq!(c.kernels().path(), p, "the path meant to run");
                for chunk in [1, 5, 64, MAX_CHUNK] {
                    let s = stream(&c, &mut SliceSource::new(input), None, chunk).expect("stream");
                    assert_eq!(
                        bits(&s),
                        bits(&reference),
                        "{which} {dtype} {p:?} stream chunk {chunk}"
                    );
                }
                let b = buffered(&c, input, 3).expect("buffered");
                assert_eq!(
                    bits(&b),
                    bits(&reference),
                    "{which} {dtype} {p:?} buffered chunk 3"
                );
            }
        }
    }
}

#[test]
fn max_tokens_reads_a_prefix() {
    let dir = TempDir::new("cls-prefix");
    let path = convert_fixture(&dir, "q8_0", "-stem");
    let len = std::fs::metadata(&path).expect("meta").len() as usize;
    let words = aligned(&path);
    let c = Classifier::from_gguf(as_bytes(&words, len)).expect("load");
    let (input, _) = &golden_of("-stem")[3];
    assert_eq!(input.len(), 300);
    let whole = stream(&c, &mut SliceSource::new(input), None, 64).expect("whole");
    for n in [1usize, 63, 64, 100, 299] {
        let s = stream(&c, &mut SliceSource::new(input), Some(n as u64), 64).expect("prefix");
        assert_eq!(
            bits(&s),
            bits(&buffered(&c, &input[..n], 64).expect("b")),
            "{n}"
        );
        assert_ne!(bits(&s), bits(&whole), "{n} bytes differ from 300");
    }
    let s = stream(&c, &mut SliceSource::new(input), Some(10_000), 64).expect("longer");
    assert_eq!(bits(&s), bits(&whole));
}

/// A source whose length grows at every pass.
struct Growing(usize, usize);
impl ByteSource for Growing {
    fn rewind(&mut self) -> Result<(), Error> {
        self.0 += 1;
        self.1 = 0;
        Ok(())
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let n = (10 * self.0 - self.1).min(buf.len());
        buf[..n].fill(b'a');
        self.1 += n;
        Ok(n)
    }
}

/// A source that fails on its second read.
struct Failing(usize);
impl ByteSource for Failing {
    fn rewind(&mut self) -> Result<(), Error> {
        Ok(())
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.0 += 1;
        if self.0 > 1 {
            return Err(Error::InputRead);
        }
        buf[0] = b'z';
        Ok(1)
    }
}

#[test]
fn misuse_is_a_typed_error() {
    let dir = TempDir::new("cls-misuse");
    let path = convert(&dir, "f32");
    let len = std::fs::metadata(&path).expect("meta").len() as usize;
    let words = aligned(&path);
    let bytes = as_bytes(&words, len);
    let c = Classifier::from_gguf(bytes).expect("load");
    assert_eq!(buffered(&c, b"", 64), Err(Error::EmptyInput));
    assert_eq!(
        stream(&c, &mut SliceSource::new(b""), None, 64),
        Err(Error::EmptyInput)
    );
    assert_eq!(
        stream(&c, &mut SliceSource::new(b"abc"), Some(0), 64),
        Err(Error::EmptyInput)
    );
    assert!(matches!(
        stream(&c, &mut Growing(0, 0), None, 64),
        Err(Error::InputChanged { first: 10, now: 20 })
    ));
    assert_eq!(stream(&c, &mut Failing(0), None, 64), Err(Error::InputRead));
    let (mut s, mut w, mut l) = (
        vec![0f32; c.summaries_len()],
        vec![0f32; c.work_len(64)],
        vec![0f32; 3],
    );
    for chunk in [0, MAX_CHUNK + 1] {
        assert!(matches!(
            c.classify_stream(
                &mut SliceSource::new(b"a"),
                None,
                &mut s,
                &mut w,
                chunk,
                &mut l
            ),
            Err(Error::ChunkSize { .. })
        ));
    }
    let short = c.summaries_len() - 1;
    assert!(matches!(
        c.classify_stream(
            &mut SliceSource::new(b"a"),
            None,
            &mut s[..short],
            &mut w,
            64,
            &mut l
        ),
        Err(Error::BufferLength { .. })
    ));
    assert!(matches!(
        c.classify_stream(
            &mut SliceSource::new(b"a"),
            None,
            &mut s,
            &mut w[..100],
            64,
            &mut l
        ),
        Err(Error::BufferLength { .. })
    ));
    assert!(matches!(
        c.classify_stream(
            &mut SliceSource::new(b"a"),
            None,
            &mut s,
            &mut w,
            64,
            &mut l[..2]
        ),
        Err(Error::BufferLength { .. })
    ));
    let mut hidden = vec![0f32; c.hidden_len(2) - 1];
    assert!(matches!(
        c.classify_buffered(b"ab", &mut hidden, &mut s, &mut w, 64, &mut l),
        Err(Error::BufferLength { .. })
    ));
    // The two kinds of model file refuse each other by name.
    assert!(matches!(Model::from_gguf(bytes), Err(Error::IsAClassifier)));
    let lm = aligned(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/latte-micro/latte-micro-q8_0.gguf"
    )));
    assert!(matches!(
        Classifier::from_gguf(bytemuck::cast_slice(&lm)),
        Err(Error::NotAClassifier)
    ));
    // Every truncation of the file before its last tensor's end is an
    // error, never a panic (the data section ends with alignment padding).
    for cut in (0..len - 32).step_by(97).chain([len - 33]) {
        assert!(
            Classifier::from_gguf(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn cli_classify_and_eval() {
    let dir = TempDir::new("cls-cli");
    let model = convert(&dir, "f32");
    let cases = golden();
    let data = dir.path("data");
    let names = ["alpha", "beta", "gamma"];
    let mut expect = [[0usize; 3]; 3];
    for (i, (input, want)) in cases.iter().enumerate() {
        let file = dir.path(&format!("input-{i}.bin"));
        std::fs::write(&file, input).expect("write");
        let out = ok(&latte([
            os("classify"),
            os("-m"),
            os(&model),
            os("-f"),
            os(&file),
        ]));
        let v: Value = serde_json::from_str(out.trim()).expect("json");
        let logits: Vec<f64> = v["logits"]
            .as_array()
            .expect("logits")
            .iter()
            .map(|x| x.as_f64().expect("f"))
            .collect();
        for (g, w) in logits.iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
        let best = (0..3)
            .max_by(|&a, &b| want[a].partial_cmp(&want[b]).expect("finite"))
            .expect("class");
        assert_eq!(v["label"], names[best]);
        assert_eq!(v["bytes_read"], input.len() as u64);
        let p: f64 = names
            .iter()
            .map(|n| v["probabilities"][n].as_f64().expect("p"))
            .sum();
        assert!((p - 1.0).abs() < 1e-9);
        // File each input under a "true" class: case i is class i % 3.
        let truth = i % 3;
        expect[truth][best] += 1;
        let sub = data.join(names[truth]);
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(sub.join(format!("{i}.bin")), input).expect("write");
    }
    let out = ok(&latte([
        os("eval-classifier"),
        os("-m"),
        os(&model),
        os("--data"),
        os(&data),
        os("--json"),
    ]));
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    let got: Vec<Vec<usize>> = v["confusion"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_u64().expect("n") as usize)
                .collect()
        })
        .collect();
    assert_eq!(got, expect.iter().map(|r| r.to_vec()).collect::<Vec<_>>());
    assert_eq!(v["examples"], 6);
    // Buffered mode and --max-bytes through the command line.
    let a = ok(&latte([
        os("classify"),
        os("-m"),
        os(&model),
        os("-p"),
        os("Hello, world!"),
        os("--mode"),
        os("buffered"),
    ]));
    let b = ok(&latte([
        os("classify"),
        os("-m"),
        os(&model),
        os("-p"),
        os("Hello, world! and more"),
        os("--max-bytes"),
        os("13"),
    ]));
    let la: Value = serde_json::from_str(a.trim()).expect("json");
    let lb: Value = serde_json::from_str(b.trim()).expect("json");
    assert_eq!(la["logits"], lb["logits"]);

    // Bad inputs: clear errors, no panics.
    let empty = dir.path("empty.txt");
    std::fs::write(&empty, b"").expect("write");
    fails(
        &latte([os("classify"), os("-m"), os(&model), os("-f"), os(&empty)]),
        &["empty"],
    );
    fails(
        &latte([
            os("classify"),
            os("-m"),
            os(&model),
            os("-f"),
            os(dir.dir()),
        ]),
        &["directory"],
    );
    fails(
        &latte([os("classify"), os("-m"), os(&model)]),
        &["-f FILE or -p TEXT"],
    );
    fails(
        &latte([
            os("classify"),
            os("-m"),
            os(&model),
            os("-p"),
            os("x"),
            os("--chunk"),
            os("0"),
        ]),
        &["chunk"],
    );
    let missing = dir.path("missing");
    fails(
        &latte([os("classify"), os("-m"), os(&model), os("-f"), os(&missing)]),
        &["cannot read"],
    );
    let lm = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/latte-micro/latte-micro-q8_0.gguf"
    );
    fails(
        &latte([os("classify"), os("-m"), os(lm), os("-p"), os("x")]),
        &["language model"],
    );
    fails(
        &latte([os("run"), os("-m"), os(&model), os("-p"), os("x")]),
        &["classifier"],
    );
    // Buffered mode refuses an input whose hidden states would pass 1 GiB
    // (D = 32: 8.4 MB of input) before reading it; stream mode has no limit.
    let big = dir.path("big.txt");
    std::fs::write(&big, vec![b'a'; 9 << 20]).expect("write");
    fails(
        &latte([
            os("classify"),
            os("-m"),
            os(&model),
            os("-f"),
            os(&big),
            os("--mode"),
            os("buffered"),
            os("--max-bytes"),
            os("0"),
        ]),
        &["--mode stream", "MiB"],
    );
    std::fs::create_dir_all(data.join("delta")).expect("mkdir");
    fails(
        &latte([
            os("eval-classifier"),
            os("-m"),
            os(&model),
            os("--data"),
            os(&data),
        ]),
        &["delta", "not one of the model's classes"],
    );
}
