//! `latte classify` and `latte eval-classifier`: bidirectional-Latte
//! sequence classifiers (`latte-classifier` model files).

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use latte_core::classifier::{ByteSource, Classified, Classifier, SliceSource};
use serde::Serialize;

use crate::mapped::Mapped;
use crate::threads::with_pool;
use crate::{ClassifyArgs, ClassifyMode, EvalClassifierArgs};

/// Most `f32` hidden states `--mode buffered` allocates (1 GiB).
const MAX_BUFFERED_FLOATS: usize = 1 << 28;

/// A file read from the start at every pass, never held in memory.
struct FileSource {
    file: BufReader<File>,
    error: Option<std::io::Error>,
}

impl ByteSource for FileSource {
    fn rewind(&mut self) -> Result<(), latte_core::Error> {
        self.file.seek(SeekFrom::Start(0)).map(|_| ()).map_err(|e| {
            self.error = Some(e);
            latte_core::Error::InputRead
        })
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, latte_core::Error> {
        loop {
            match self.file.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.error = Some(e);
                    return Err(latte_core::Error::InputRead);
                }
            }
        }
    }
}

fn load<'a>(bytes: &'a Mapped, shown: &str) -> Result<Classifier<'a>> {
    Classifier::from_gguf(bytes).with_context(|| format!("{shown}: cannot load the classifier"))
}

/// The class names: the file's, else `0`, `1`, ...
fn labels(c: &Classifier<'_>) -> Vec<String> {
    (0..c.config().n_classes)
        .map(|i| {
            c.label(i)
                .map(str::to_string)
                .unwrap_or_else(|| i.to_string())
        })
        .collect()
}

/// Softmax of the logits, in f64.
fn probabilities(logits: &[f32]) -> Vec<f64> {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let e: Vec<f64> = logits.iter().map(|&v| (v as f64 - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Buffers for one classifier, reused over inputs.
struct Runner<'m, 'a> {
    model: &'m Classifier<'a>,
    summaries: Vec<f32>,
    work: Vec<f32>,
    hidden: Vec<f32>,
    logits: Vec<f32>,
    chunk: usize,
    mode: ClassifyMode,
    max_tokens: Option<u64>,
}

impl<'m, 'a> Runner<'m, 'a> {
    fn new(
        model: &'m Classifier<'a>,
        chunk: usize,
        mode: ClassifyMode,
        max_bytes: Option<u64>,
    ) -> Result<Self> {
        let work = model.work_len(chunk);
        ensure!(
            work != usize::MAX,
            "the classifier's work area does not fit in memory"
        );
        // `--max-bytes`: 0 = the whole input; absent = the training length.
        let max_tokens = match max_bytes {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some(model.config().context_length as u64),
        };
        Ok(Runner {
            model,
            summaries: vec![0.0; model.summaries_len()],
            work: vec![0.0; work],
            hidden: Vec::new(),
            logits: vec![0.0; model.config().n_classes],
            chunk,
            mode,
            max_tokens,
        })
    }

    /// In buffered mode, refuses an input of `len` bytes whose hidden states
    /// would pass [`MAX_BUFFERED_FLOATS`].
    fn check_buffered(&self, len: u64, shown: &str) -> Result<()> {
        if self.mode != ClassifyMode::Buffered {
            return Ok(());
        }
        let bytes = len.min(self.max_tokens.unwrap_or(u64::MAX));
        let floats = bytes.saturating_mul(self.model.config().d_model as u64);
        ensure!(
            floats <= MAX_BUFFERED_FLOATS as u64,
            "{shown}: --mode buffered would keep {} MiB of hidden states for {bytes} bytes (4 D \
             bytes per byte, at most {} MiB); use --mode stream, which needs no memory per byte, \
             or a smaller --max-bytes",
            (floats * 4) >> 20,
            (MAX_BUFFERED_FLOATS * 4) >> 20
        );
        Ok(())
    }

    /// Classifies a source (streaming) or its bytes (buffered).
    fn run(
        &mut self,
        source: &mut dyn ByteSource,
        par: &dyn latte_core::Parallel<'a>,
    ) -> Result<Classified, latte_core::Error> {
        match self.mode {
            ClassifyMode::Stream => self.model.classify_stream_with(
                source,
                self.max_tokens,
                &mut self.summaries,
                &mut self.work,
                self.chunk,
                &mut self.logits,
                par,
            ),
            ClassifyMode::Buffered => {
                source.rewind()?;
                let mut bytes = Vec::new();
                let limit = self.max_tokens.unwrap_or(u64::MAX);
                let mut buf = [0u8; 65536];
                while (bytes.len() as u64) < limit {
                    let want = (limit - bytes.len() as u64).min(buf.len() as u64) as usize;
                    let n = source.read(&mut buf[..want])?;
                    if n == 0 {
                        break;
                    }
                    bytes.extend_from_slice(&buf[..n]);
                }
                let need = self.model.hidden_len(bytes.len());
                if need == usize::MAX || need > MAX_BUFFERED_FLOATS {
                    // `check_buffered` refuses such inputs before reading.
                    return Err(latte_core::Error::SizeOverflow);
                }
                self.hidden.resize(need, 0.0);
                self.model.classify_buffered_with(
                    &bytes,
                    &mut self.hidden,
                    &mut self.summaries,
                    &mut self.work,
                    self.chunk,
                    &mut self.logits,
                    par,
                )
            }
        }
    }
}

#[derive(Serialize)]
struct ClassifyReport<'l> {
    label: &'l str,
    class: usize,
    probabilities: std::collections::BTreeMap<&'l str, f64>,
    logits: Vec<f32>,
    bytes_read: u64,
    mode: &'static str,
}

fn open_source(path: &Path) -> Result<FileSource> {
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
    ensure!(!meta.is_dir(), "{shown} is a directory; give a file");
    ensure!(
        meta.is_file(),
        "{shown} is not a regular file (a pipe or device is read once, and a classifier reads its \
         input once per layer); save the input to a file first"
    );
    let file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
    Ok(FileSource {
        file: BufReader::with_capacity(1 << 16, file),
        error: None,
    })
}

/// Turns a core error into a message, with the file's own I/O error.
fn explain(e: latte_core::Error, io: Option<std::io::Error>, shown: &str) -> anyhow::Error {
    match (e, io) {
        (latte_core::Error::InputRead, Some(io)) => anyhow!("cannot read {shown}: {io}"),
        (latte_core::Error::EmptyInput, _) => {
            anyhow!("{shown} is empty: there is nothing to classify")
        }
        (e, _) => anyhow!("{shown}: {e}"),
    }
}

fn prompt_text(p: &OsString) -> Result<Vec<u8>> {
    let s = p.to_str().ok_or_else(|| {
        anyhow!("the text is not valid UTF-8; pass UTF-8 with -p, or a file with -f")
    })?;
    ensure!(
        !s.is_empty(),
        "the text is empty; give at least one character with -p"
    );
    Ok(s.as_bytes().to_vec())
}

pub fn classify(args: &ClassifyArgs) -> Result<()> {
    let shown = args.model.display().to_string();
    let bytes = Mapped::open(&args.model)?;
    let mut model = load(&bytes, &shown)?;
    model.set_kernels(crate::bench::kernels_arg(args.kernels.as_deref())?);
    let names = labels(&model);
    let threads = args.threads.unwrap_or_else(crate::threads::default_threads);
    let (result, read) = with_pool(threads, |pool| -> Result<(Classified, Vec<f32>)> {
        let mut runner = Runner::new(&model, args.chunk, args.mode, args.max_bytes)?;
        let c = match (&args.file, &args.prompt) {
            (Some(path), None) => {
                let mut src = open_source(path)?;
                let len = src.file.get_ref().metadata().map(|m| m.len()).unwrap_or(0);
                runner.check_buffered(len, &path.display().to_string())?;
                let r = runner.run(&mut src, pool);
                let io = src.error.take();
                r.map_err(|e| explain(e, io, &path.display().to_string()))?
            }
            (None, Some(p)) => {
                let text = prompt_text(p)?;
                runner.check_buffered(text.len() as u64, "the text")?;
                runner
                    .run(&mut SliceSource::new(&text), pool)
                    .map_err(|e| explain(e, None, "the text"))?
            }
            _ => bail!("give the input with -f FILE or -p TEXT"),
        };
        Ok((c, runner.logits.clone()))
    })?;
    let probs = probabilities(&read);
    let report = ClassifyReport {
        label: &names[result.class],
        class: result.class,
        probabilities: names.iter().map(String::as_str).zip(probs).collect(),
        logits: read,
        bytes_read: result.tokens,
        mode: match args.mode {
            ClassifyMode::Stream => "stream",
            ClassifyMode::Buffered => "buffered",
        },
    };
    crate::run::write_stdout(format!("{}\n", serde_json::to_string(&report)?).as_bytes())
}

#[derive(Serialize)]
struct EvalReport {
    examples: usize,
    accuracy: f64,
    labels: Vec<String>,
    /// `confusion[true][predicted]`.
    confusion: Vec<Vec<usize>>,
    per_class: Vec<ClassScore>,
    bytes_read: u64,
    seconds: f64,
}

#[derive(Serialize)]
struct ClassScore {
    label: String,
    precision: f64,
    recall: f64,
    f1: f64,
    support: usize,
}

/// The files of `dir/<label>/` for every label, sorted; errors name
/// folders that are not labels.
fn examples(dir: &Path, names: &[String]) -> Result<Vec<(usize, PathBuf)>> {
    let shown = dir.display();
    ensure!(
        dir.is_dir(),
        "{shown} is not a directory; give a folder with one sub-folder per class"
    );
    let mut out = Vec::new();
    let mut folders = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {shown}"))? {
        let entry = entry.with_context(|| format!("cannot list {shown}"))?;
        if !entry.path().is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(class) = names.iter().position(|n| *n == name) else {
            bail!(
                "{shown}/{name} is not one of the model's classes ({}); name the sub-folders after them",
                names.join(", ")
            );
        };
        folders += 1;
        let mut files: Vec<PathBuf> = std::fs::read_dir(entry.path())
            .with_context(|| format!("cannot list {shown}/{name}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|p| (class, p)));
    }
    ensure!(
        folders > 0,
        "{shown} has no sub-folder named after a class ({}); put each example in DIR/<class>/",
        names.join(", ")
    );
    ensure!(!out.is_empty(), "{shown} holds no example files");
    out.sort();
    Ok(out)
}

pub fn eval_classifier(args: &EvalClassifierArgs) -> Result<()> {
    let shown = args.model.display().to_string();
    let bytes = Mapped::open(&args.model)?;
    let mut model = load(&bytes, &shown)?;
    model.set_kernels(crate::bench::kernels_arg(args.kernels.as_deref())?);
    let names = labels(&model);
    let list = examples(&args.data, &names)?;
    let c = names.len();
    let mut confusion = vec![vec![0usize; c]; c];
    let start = std::time::Instant::now();
    let threads = args.threads.unwrap_or_else(crate::threads::default_threads);
    let read = with_pool(threads, |pool| -> Result<u64> {
        let mut runner = Runner::new(&model, args.chunk, args.mode, args.max_bytes)?;
        let mut read = 0u64;
        for (i, (truth, path)) in list.iter().enumerate() {
            let mut src = open_source(path)?;
            let len = src.file.get_ref().metadata().map(|m| m.len()).unwrap_or(0);
            runner.check_buffered(len, &path.display().to_string())?;
            let r = runner.run(&mut src, pool);
            let io = src.error.take();
            let got = r.map_err(|e| explain(e, io, &path.display().to_string()))?;
            confusion[*truth][got.class] += 1;
            read += got.tokens;
            if !args.json && (i + 1) % 50 == 0 {
                eprint!("\r{}/{} examples", i + 1, list.len());
            }
        }
        if !args.json && list.len() >= 50 {
            eprintln!();
        }
        Ok(read)
    })?;
    let n = list.len();
    let correct: usize = (0..c).map(|i| confusion[i][i]).sum();
    let per_class = (0..c)
        .map(|k| {
            let tp = confusion[k][k] as f64;
            let predicted: usize = (0..c).map(|t| confusion[t][k]).sum();
            let support: usize = confusion[k].iter().sum();
            let precision = if predicted > 0 {
                tp / predicted as f64
            } else {
                0.0
            };
            let recall = if support > 0 {
                tp / support as f64
            } else {
                0.0
            };
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassScore {
                label: names[k].clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let report = EvalReport {
        examples: n,
        accuracy: correct as f64 / n as f64,
        labels: names.clone(),
        confusion,
        per_class,
        bytes_read: read,
        seconds: start.elapsed().as_secs_f64(),
    };
    if args.json {
        return crate::run::write_stdout(
            format!("{}\n", serde_json::to_string(&report)?).as_bytes(),
        );
    }
    let mut s = format!(
        "{n} examples, accuracy {:.4} ({correct}/{n}), {:.1} s\n\nconfusion (rows: true class, columns: predicted)\n",
        report.accuracy, report.seconds
    );
    let w = names.iter().map(String::len).max().unwrap_or(1).max(6);
    s += &format!("{:>w$}", "");
    for name in &names {
        s += &format!(" {name:>w$}");
    }
    s += "\n";
    for (name, row) in names.iter().zip(&report.confusion) {
        s += &format!("{name:>w$}");
        for v in row {
            s += &format!(" {v:>w$}");
        }
        s += "\n";
    }
    s += "\nclass precision recall f1 support\n";
    for k in &report.per_class {
        s += &format!(
            "{} {:.4} {:.4} {:.4} {}\n",
            k.label, k.precision, k.recall, k.f1, k.support
        );
    }
    crate::run::write_stdout(s.as_bytes())
}
