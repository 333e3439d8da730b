//! `latte`: convert checkpoints to the Latte GGUF format, inspect model
//! files, generate text and dump logits. The `latte` binary is [`cli_main`];
//! the library also lets other front ends (the Python package) call the
//! converter ([`convert_checkpoint`]).
#![deny(unsafe_code)]

mod bench;
mod chart;
mod classify;
pub mod convert;
mod inspect;
mod mapped;
pub mod perplexity;
mod run;
mod threads;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Causal Latte language models: convert, inspect, run.
#[derive(Parser, Debug)]
#[command(name = "latte", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Convert a safetensors checkpoint (reference trainer or official Flax
    /// names, detected automatically) into a Latte GGUF model file.
    Convert(ConvertArgs),
    /// Print a GGUF file's header, metadata and tensors, and the memory the
    /// model needs to run.
    Inspect(InspectArgs),
    /// Generate bytes from a byte-level model (token = byte), streaming them
    /// to stdout after the echoed prompt; speed goes to stderr. The prompt
    /// is fed in chunks (--chunk), generation token by token; --threads
    /// spreads both over threads.
    Run(RunArgs),
    /// Print, as JSON, the logits after each prompt token:
    /// {"tokens":[...],"logits":[[V floats] per position]}.
    Logits(LogitsArgs),
    /// Bits per byte and perplexity of a byte-level model over a text file;
    /// with --reference, also the mean KL divergence KL(reference || model)
    /// per token and how often both models rank the same token first; with
    /// --buckets, bits per byte by position too (CSV and SVG plot on request).
    Perplexity(PerplexityArgs),
    /// Prefill speed (chunked, and token by token for comparison), decode
    /// speed, and per-token decode latency at context lengths 64, 128, ...
    /// up to --max-ctx (CSV and SVG plot on request).
    Bench(BenchArgs),
    /// Classify a text or file with a sequence classifier (a
    /// latte-classifier file, bidirectional Latte); prints JSON with the
    /// label, the class probabilities and the logits. The default mode
    /// streams the file, reading it once per layer, in memory that does not
    /// depend on its length.
    Classify(ClassifyArgs),
    /// Accuracy, per-class precision/recall/F1 and the confusion matrix of a
    /// classifier over a folder with one sub-folder of example files per
    /// class (DIR/<label>/*).
    EvalClassifier(EvalClassifierArgs),
}

/// How `classify` holds the input.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassifyMode {
    /// Read the input once per layer; memory independent of its length.
    Stream,
    /// Read the input once into memory (hidden states: 4 D bytes per
    /// input byte); N block passes per byte instead of N(N+1)/2 + N.
    Buffered,
}

/// Largest `--chunk` of the classifier commands.
fn parse_classifier_chunk(s: &str) -> Result<usize, String> {
    let max = latte_core::classifier::MAX_CHUNK;
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` is not a chunk size from 1 to {max}")),
    }
}

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// Classifier file (.gguf, latte-classifier).
    #[arg(short, long)]
    pub model: PathBuf,
    /// The input file (any bytes; never loaded whole in stream mode).
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        conflicts_with = "prompt"
    )]
    pub file: Option<PathBuf>,
    /// The input as text.
    #[arg(short = 'p', long = "prompt", value_name = "TEXT")]
    pub prompt: Option<OsString>,
    /// Read only the first N bytes; 0 = the whole input. Default: the
    /// model's training length (latte-classifier.context_length), the
    /// part of a message the model learned from.
    #[arg(long, value_name = "N", value_parser = parse_u64)]
    pub max_bytes: Option<u64>,
    /// stream (default): constant memory; buffered: the input in memory.
    /// Both give the same logits.
    #[arg(long, value_enum, default_value_t = ClassifyMode::Stream)]
    pub mode: ClassifyMode,
    /// Bytes per chunk through the matrix products, 1 to 256 (the logits
    /// are the same bits for every size).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = parse_classifier_chunk)]
    pub chunk: usize,
    /// Threads for the matrix products (same results for every count).
    #[arg(short = 't', long, value_name = "N", value_parser = threads::parse_threads, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Kernel path (e.g. scalar, avx2); default: the best this CPU has.
    #[arg(long, value_name = "NAME")]
    pub kernels: Option<String>,
}

#[derive(Args, Debug)]
pub struct EvalClassifierArgs {
    /// Classifier file (.gguf, latte-classifier).
    #[arg(short, long)]
    pub model: PathBuf,
    /// Folder with one sub-folder per class, named as the model's labels
    /// (e.g. DIR/ham/*, DIR/spam/*), each file one example.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Read only the first N bytes of each file; 0 = whole files. Default:
    /// the model's training length.
    #[arg(long, value_name = "N", value_parser = parse_u64)]
    pub max_bytes: Option<u64>,
    /// stream (default) or buffered; the same predictions.
    #[arg(long, value_enum, default_value_t = ClassifyMode::Stream)]
    pub mode: ClassifyMode,
    /// Bytes per chunk, 1 to 256.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = parse_classifier_chunk)]
    pub chunk: usize,
    /// Threads for the matrix products.
    #[arg(short = 't', long, value_name = "N", value_parser = threads::parse_threads, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Kernel path; default: the best this CPU has.
    #[arg(long, value_name = "NAME")]
    pub kernels: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| format!("`{s}` is not a whole number >= 0"))
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Input checkpoint (.safetensors).
    pub input: PathBuf,
    /// Output model file (.gguf).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Model name stored as general.name (default: the checkpoint's
    /// `latte.name` metadata, else the input file's stem).
    #[arg(long)]
    pub name: Option<String>,
    /// Number of heads H (required for official Flax checkpoints, which do
    /// not store it; must agree with latte.config for trainer checkpoints).
    #[arg(long, value_name = "H")]
    pub heads: Option<u32>,
    /// Training context length (Flax default 1024; trainer: from latte.config).
    #[arg(long, value_name = "N")]
    pub context_length: Option<u32>,
    /// VAPOR frequency base b, theta_i = b^(-2i/Dh) (trainer VAPOR models
    /// only; default: latte.config's vapor_base, else 10000).
    #[arg(long, value_name = "B", allow_negative_numbers = true)]
    pub vapor_base: Option<f64>,
    /// Precision of the 2-D matrices; norms and biases are always f32, and
    /// with q4_0 token_embd and output are q8_0 (at least 8-bit). A
    /// quantized matrix needs rows whose length is a multiple of 32.
    #[arg(long, value_enum, default_value_t = convert::TensorType::F32)]
    pub dtype: convert::TensorType,
    /// Type of the matrices whose GGUF name matches PATTERN (`*` matches
    /// anything, the whole name must match; the last matching flag wins),
    /// e.g. --tensor-type 'blk.*.ffn_*=q4_0' --tensor-type 'output.weight=f16'.
    /// TYPE: f32, f16, q8_0 or q4_0. Norms and biases stay f32.
    #[arg(long = "tensor-type", value_name = "PATTERN=TYPE")]
    pub tensor_type: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Model file (.gguf).
    pub model: PathBuf,
}

/// Seed used when `--seed` is not given, so that runs are reproducible.
pub const DEFAULT_SEED: u64 = 42;

/// Default `--chunk`: prompt tokens per prefill chunk.
pub const DEFAULT_CHUNK: usize = 64;

/// Largest `--chunk` (its scratch grows linearly: about 4 KiB per token for
/// latte-micro).
pub const MAX_CHUNK: usize = 4096;

/// `--threads` and `--chunk`, shared by run, perplexity and bench.
#[derive(Args, Debug, Clone, Copy)]
pub struct ComputeArgs {
    /// Threads for the matrix products (rows split between them; the results
    /// are the same bits for every count). Default: the number of CPUs
    /// available to this process. 1 = no extra threads.
    #[arg(short = 't', long, value_name = "N", value_parser = threads::parse_threads, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Prompt tokens per prefill chunk: each weight is read once per chunk
    /// instead of once per token (the results are the same bits for every
    /// size). 1 to 4096.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CHUNK, value_parser = parse_chunk, allow_negative_numbers = true)]
    pub chunk: usize,
    /// How the attention window of a Macchiato or attention model keeps
    /// its keys and values: f32 (the default), f16 (half the memory) or q8
    /// (8 bits with a scale per head, about a quarter). The logits move by
    /// their rounding. Only for models with a window.
    #[arg(long, value_name = "STORAGE", value_parser = parse_ring)]
    pub ring: Option<latte_core::RingStorage>,
}

impl ComputeArgs {
    /// `--threads`, or the default.
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(threads::default_threads)
    }

    /// `model` with its ring in the `--ring` storage (unchanged without
    /// the flag); an error for a model without a window.
    pub fn with_ring<'a>(
        &self,
        model: latte_core::Model<'a>,
        shown: &str,
    ) -> anyhow::Result<latte_core::Model<'a>> {
        let Some(ring) = self.ring else {
            return Ok(model);
        };
        if model.config().mixing.window() == 0 {
            anyhow::bail!(
                "--ring {}: {shown} has no attention window (latte.mixer = {}); the flag is for \
                 Macchiato and attention models",
                ring.name(),
                model.config().mixing.name()
            );
        }
        Ok(model.with_ring_storage(ring)?)
    }
}

fn parse_ring(s: &str) -> Result<latte_core::RingStorage, String> {
    latte_core::RingStorage::from_name(s.trim())
        .ok_or_else(|| format!("`{s}` is not a ring storage: f32, f16 or q8"))
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Model file (.gguf), byte-level (vocabulary of at most 256 tokens).
    #[arg(short, long)]
    pub model: PathBuf,
    /// Prompt text (UTF-8, not empty); its bytes are the prompt tokens.
    /// Optional with --load-state: it is then fed after the restored state.
    #[arg(short, long, value_parser = clap::value_parser!(OsString), required_unless_present = "load_state")]
    pub prompt: Option<OsString>,
    /// Continue from a state saved with --save-state (same model only): the
    /// sampler continues as saved too; sampling flags given here replace its
    /// settings, and --seed restarts its random numbers.
    #[arg(long, value_name = "FILE")]
    pub load_state: Option<PathBuf>,
    /// After generating, save the state (position, recurrent state, sampler)
    /// to FILE, to continue later with --load-state.
    #[arg(long, value_name = "FILE")]
    pub save_state: Option<PathBuf>,
    /// Sampling flags given on the command line (filled in by `main`, not a flag).
    #[arg(skip)]
    pub explicit: Vec<&'static str>,
    /// Number of tokens to generate.
    #[arg(short = 'n', long = "n-predict", value_name = "N", default_value_t = 128, value_parser = parse_count, allow_negative_numbers = true)]
    pub n_predict: usize,
    /// Temperature: finite, >= 0; 0 picks the most likely token.
    #[arg(long, value_name = "T", default_value_t = 0.8, value_parser = parse_temperature, allow_negative_numbers = true)]
    pub temp: f32,
    /// Keep only the K most likely tokens; 0 turns it off.
    #[arg(long, value_name = "K", default_value_t = 40, value_parser = parse_count, allow_negative_numbers = true)]
    pub top_k: usize,
    /// Nucleus sampling mass, in (0, 1]; 1 turns it off.
    #[arg(long, value_name = "P", default_value_t = 0.95, value_parser = parse_top_p, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Repetition penalty: finite, > 0; 1 turns it off.
    #[arg(long, value_name = "R", default_value_t = 1.0, value_parser = parse_repeat_penalty, allow_negative_numbers = true)]
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at (at most 256; 0 turns it off).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = parse_repeat_last_n, allow_negative_numbers = true)]
    pub repeat_last_n: usize,
    /// Sampling seed; the default makes runs reproducible.
    #[arg(long, value_name = "S", default_value_t = DEFAULT_SEED, value_parser = parse_seed, allow_negative_numbers = true)]
    pub seed: u64,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["prompt", "tokens"])))]
pub struct LogitsArgs {
    /// Model file (.gguf).
    #[arg(short, long)]
    pub model: PathBuf,
    /// Prompt text (UTF-8, not empty); its bytes are the tokens.
    #[arg(short, long, value_parser = clap::value_parser!(OsString))]
    pub prompt: Option<OsString>,
    /// Token ids instead of a prompt, comma-separated (e.g. 3,1,4,1,5).
    #[arg(long, value_name = "IDS", allow_negative_numbers = true)]
    pub tokens: Option<String>,
}

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    /// Model file (.gguf), byte-level (vocabulary of at most 256 tokens).
    #[arg(short, long)]
    pub model: PathBuf,
    /// Text file; its bytes are the tokens.
    #[arg(short = 'f', long = "file", value_name = "TEXT")]
    pub file: PathBuf,
    /// Another model file run on the same bytes: adds the mean
    /// KL(reference || model) per token (nats) and the same-top-token rate.
    #[arg(long, value_name = "OTHER.gguf")]
    pub reference: Option<PathBuf>,
    /// Score windows of N bytes, starting every window from the initial
    /// state (its first byte is context only). Default: the whole file as one
    /// continuous sequence (every byte after the first is scored).
    #[arg(long, value_name = "N", value_parser = parse_ctx)]
    pub ctx: Option<usize>,
    /// Use only the first N bytes of the file.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub max_bytes: Option<usize>,
    /// Also report bits/byte by position of the scored byte (the bytes
    /// before it since the last reset: the start of the text, or of its
    /// --ctx window). EDGES are the upper ends of the ranges, increasing,
    /// with k = 1024 and M = 1024^2; without a value: 256,1k,4k,16k,64k,
    /// that is 0-256, 256-1k, 1k-4k, 4k-16k, 16k-64k and 64k+. KL and the
    /// same-top rate stay overall.
    #[arg(long, value_name = "EDGES", num_args = 0..=1, default_missing_value = perplexity::DEFAULT_BUCKETS, value_parser = perplexity::parse_buckets)]
    pub buckets: Option<perplexity::BucketEdges>,
    /// Write the --buckets table as CSV to FILE.
    #[arg(long, value_name = "FILE", requires = "buckets")]
    pub csv: Option<PathBuf>,
    /// Write the --buckets table as an SVG plot to FILE.
    #[arg(long, value_name = "FILE", requires = "buckets")]
    pub svg: Option<PathBuf>,
    /// Print the results as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Model file (.gguf), byte-level (vocabulary of at most 256 tokens).
    #[arg(short, long)]
    pub model: PathBuf,
    /// Prompt bytes fed for the prefill measurement.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = parse_positive)]
    pub prefill: usize,
    /// Tokens generated (greedy) for the decode measurement.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = parse_positive)]
    pub decode: usize,
    /// Longest context for the latency curve: a power of two >= 64.
    #[arg(long, value_name = "N", default_value_t = 65_536, value_parser = parse_max_ctx)]
    pub max_ctx: usize,
    /// Decode steps timed at each context length (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = parse_positive)]
    pub samples: usize,
    /// Kernel path: scalar, avx2, avxvnni, avx512vnni, neon, neon-dotprod
    /// (default: the fastest this CPU has).
    #[arg(long, value_name = "PATH")]
    pub kernels: Option<String>,
    /// Write the latency curve as CSV to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write the latency curve as an SVG plot to FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Spawn the threads anew for every matrix product instead of keeping
    /// a pool (slower; for comparison).
    #[arg(long)]
    pub spawn_per_product: bool,
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!("`{s}` is not a whole number >= 1")),
    }
}

fn parse_chunk(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if (1..=MAX_CHUNK).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{s}` is not a chunk size: a whole number of tokens from 1 to {MAX_CHUNK}"
        )),
    }
}

fn parse_max_ctx(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if v >= 64 && v.is_power_of_two() => Ok(v),
        _ => Err(format!(
            "`{s}` is not a context length for the curve: a power of two >= 64 (64, 128, ..., 65536)"
        )),
    }
}

fn parse_ctx(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if v >= 2 => Ok(v),
        _ => Err(format!(
            "`{s}` is not a window length: a whole number >= 2 (one byte of context, one scored)"
        )),
    }
}

fn parse_count(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .map_err(|_| format!("`{s}` is not a whole number >= 0"))
}

fn parse_seed(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| format!("`{s}` is not a seed (a whole number from 0 to 2^64-1)"))
}

fn parse_f32(s: &str) -> Result<f32, String> {
    s.trim()
        .parse::<f32>()
        .map_err(|_| format!("`{s}` is not a number"))
}

fn parse_temperature(s: &str) -> Result<f32, String> {
    let v = parse_f32(s)?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(
            "the temperature must be a finite number >= 0 (0 = always the most likely token)"
                .into(),
        )
    }
}

fn parse_top_p(s: &str) -> Result<f32, String> {
    let v = parse_f32(s)?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err("top-p must be in (0, 1] (1 = off)".into())
    }
}

fn parse_repeat_penalty(s: &str) -> Result<f32, String> {
    let v = parse_f32(s)?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err("the repeat penalty must be a finite number > 0 (1 = off)".into())
    }
}

fn parse_repeat_last_n(s: &str) -> Result<usize, String> {
    let max = latte_core::sampler::MAX_REPEAT_LAST_N;
    match s.trim().parse::<usize>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(format!(
            "repeat-last-n must be a whole number from 0 to {max}"
        )),
    }
}

/// The ids of `run`'s sampling flags, as clap names them.
pub const SAMPLING_FLAGS: [&str; 6] = [
    "temp",
    "top_k",
    "top_p",
    "repeat_penalty",
    "repeat_last_n",
    "seed",
];

/// Converts a checkpoint as `latte convert INPUT -o OUTPUT --dtype DTYPE
/// [--name NAME]` does (DTYPE: f32, f16, q8_0 or q4_0).
pub fn convert_checkpoint(
    input: &std::path::Path,
    output: &std::path::Path,
    dtype: &str,
    name: Option<&str>,
) -> anyhow::Result<()> {
    let dtype = convert::TensorType::parse(dtype)
        .ok_or_else(|| anyhow::anyhow!("dtype `{dtype}` is not one of f32, f16, q8_0, q4_0"))?;
    convert::convert(&ConvertArgs {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        name: name.map(str::to_string),
        heads: None,
        context_length: None,
        vapor_base: None,
        dtype,
        tensor_type: Vec::new(),
    })
}

/// The `latte` command line: parses `std::env::args` and runs the command.
pub fn cli_main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Convert(a) => convert::convert(&a),
        Command::Inspect(a) => inspect::inspect(&a),
        Command::Run(mut a) => {
            if let Some(m) = matches.subcommand_matches("run") {
                a.explicit = SAMPLING_FLAGS
                    .into_iter()
                    .filter(|id| m.value_source(id) == Some(ValueSource::CommandLine))
                    .collect();
            }
            run::run(&a)
        }
        Command::Logits(a) => run::logits(&a),
        Command::Perplexity(a) => perplexity::perplexity(&a),
        Command::Bench(a) => bench::bench(&a),
        Command::Classify(a) => classify::classify(&a),
        Command::EvalClassifier(a) => classify::eval_classifier(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
