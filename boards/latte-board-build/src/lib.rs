//! The build script of every latte board calls [`configure`]: it puts the
//! board's `memory.x` on the linker path, validates the model file with the
//! same `latte-core` the firmware runs, sizes the static state and scratch
//! for it exactly, and stops the build with a message that says what to do
//! when the model does not fit the board's memory.
//!
//! It writes `$OUT_DIR/model.rs`, which the firmware includes:
//!
//! ```text
//! pub const MODEL_NAME: &str;   // file name of the model
//! pub const MODEL_BYTES: usize; // its size
//! pub const STATE_LEN: usize;   // f32 elements of recurrent state
//! pub const SCRATCH_LEN: usize; // f32 elements of scratch
//! pub const RING: latte_board::RingStorage; // how a window's ring stores keys and values
//! pub static MODEL: latte_board::Aligned<[u8; MODEL_BYTES]>; // in flash (or `section`)
//! ```
//!
//! The model is the board's default unless the environment variable
//! `LATTE_MODEL` names another file (absolute, or relative to the board's
//! directory); `LATTE_RING` (`f32`, `f16`, `q8`) likewise replaces the
//! board's ring storage.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs, process};

/// What a board declares about itself.
pub struct Board<'a> {
    /// The default model, relative to the board's directory.
    pub model: &'a str,
    /// The `memory.x` region that holds the model (`"FLASH"` unless the
    /// board places it elsewhere).
    pub model_region: &'a str,
    /// Linker section for the model (`None`: read-only data in `FLASH`).
    /// A board that names one defines it in its `memory.x`.
    pub model_section: Option<&'a str>,
    /// Bytes of `RAM` kept for the stack (measured: see the board README).
    pub stack_reserve: usize,
    /// Bytes of the model's region kept for code and other read-only data
    /// when the model shares it with them.
    pub code_reserve: usize,
    /// How the attention window of a Macchiato or attention model keeps its
    /// keys and values: `"f32"`, `"f16"` or `"q8"` (`latte_core::RingStorage`;
    /// the state is sized for it). Models without a window ignore it.
    pub ring: &'a str,
}

/// A region of `memory.x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Its name (`FLASH`, `RAM`, ...).
    pub name: String,
    /// Start address.
    pub origin: u64,
    /// Size in bytes.
    pub length: u64,
}

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: {msg}\n");
    process::exit(1);
}

/// Parses the `MEMORY { NAME (attrs) : ORIGIN = x, LENGTH = y }` lines of a
/// linker script (hex or decimal, `K`/`M` suffixes, `/* */` comments).
pub fn parse_memory(script: &str) -> Result<Vec<Region>, String> {
    let mut text = String::new();
    let mut rest = script;
    while let Some(start) = rest.find("/*") {
        text.push_str(&rest[..start]);
        rest = match rest[start..].find("*/") {
            Some(end) => &rest[start + end + 2..],
            None => return Err("unterminated comment".into()),
        };
    }
    text.push_str(rest);
    let mut regions = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((name, spec)) = line.split_once(':') else {
            continue;
        };
        if !spec.contains("ORIGIN") || !spec.contains("LENGTH") {
            continue;
        }
        let name = name.split('(').next().unwrap_or("").trim().to_string();
        let field = |key: &str| -> Result<u64, String> {
            let at = spec.find(key).ok_or(format!("{name}: no {key}"))?;
            let value = spec[at + key.len()..]
                .trim_start()
                .trim_start_matches('=')
                .split(',')
                .next()
                .unwrap_or("")
                .trim();
            parse_size(value).ok_or(format!("{name}: cannot read {key} = {value:?}"))
        };
        regions.push(Region {
            origin: field("ORIGIN")?,
            length: field("LENGTH")?,
            name,
        });
    }
    Ok(regions)
}

/// `0x2000_0000`, `512K`, `4M`, `1024`.
fn parse_size(v: &str) -> Option<u64> {
    let v = v.replace('_', "");
    let (digits, mult) = match v.chars().last()? {
        'K' | 'k' => (&v[..v.len() - 1], 1024),
        'M' | 'm' => (&v[..v.len() - 1], 1024 * 1024),
        _ => (&v[..], 1),
    };
    let n = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    n.checked_mul(mult)
}

/// The board's directory and `OUT_DIR`, with `memory.x` copied onto the
/// linker path (cortex-m-rt's link.x includes it) and parsed.
fn board_memory() -> (PathBuf, PathBuf, Vec<Region>) {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("run by cargo"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("run by cargo"));
    let memory_path = dir.join("memory.x");
    let memory = fs::read_to_string(&memory_path)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", memory_path.display())));
    fs::write(out.join("memory.x"), &memory).expect("OUT_DIR is writable");
    println!("cargo::rustc-link-search={}", out.display());
    println!("cargo::rerun-if-changed=memory.x");
    println!("cargo::rerun-if-changed=build.rs");
    let regions = parse_memory(&memory).unwrap_or_else(|e| fail(&format!("memory.x: {e}")));
    (dir, out, regions)
}

/// The region called `name` of `regions` (the build stops if there is none).
fn region(regions: &[Region], name: &str) -> Region {
    regions
        .iter()
        .find(|r| r.name == name)
        .cloned()
        .unwrap_or_else(|| fail(&format!("memory.x has no region named {name}")))
}

/// Configures the board's build (see the crate documentation).
pub fn configure(board: Board) {
    let (dir, out, regions) = board_memory();
    println!("cargo::rerun-if-env-changed=LATTE_MODEL");
    println!("cargo::rerun-if-env-changed=LATTE_RING");
    let region = |name: &str| region(&regions, name);
    let ring_name = match env::var("LATTE_RING") {
        Ok(r) if !r.is_empty() => r,
        _ => board.ring.to_string(),
    };
    let ring = latte_core::RingStorage::from_name(&ring_name).unwrap_or_else(|| {
        fail(&format!(
            "ring storage `{ring_name}` (LATTE_RING or the board's build.rs): use f32, f16 or q8"
        ))
    });

    // The model: validated by latte-core exactly as the firmware will.
    let model_path = match env::var("LATTE_MODEL") {
        Ok(p) if !p.is_empty() => dir.join(p),
        _ => dir.join(board.model),
    };
    let model_path = model_path.canonicalize().unwrap_or_else(|e| {
        fail(&format!(
            "model file {}: {e}\n       (set LATTE_MODEL to a .gguf file, or restore the default {})",
            model_path.display(),
            board.model
        ))
    });
    println!("cargo::rerun-if-changed={}", model_path.display());
    let bytes = fs::read(&model_path)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", model_path.display())));
    let (state_len, scratch_len) = sizes(&bytes, ring).unwrap_or_else(|e| {
        fail(&format!(
            "{} is not a model this runtime can run: {e}",
            model_path.display()
        ))
    });
    let name = model_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    // Budgets.
    let ram = region("RAM");
    let ram_need = 4 * (state_len + scratch_len) as u64 + board.stack_reserve as u64;
    if ram_need > ram.length {
        fail(&format!(
            "{name} needs {ram_need} bytes of RAM (state {} + scratch {} + stack {}), \
             but this board's RAM region has {}: choose a smaller model (LATTE_MODEL)",
            4 * state_len,
            4 * scratch_len,
            board.stack_reserve,
            ram.length
        ));
    }
    let home = region(board.model_region);
    let reserve = if board.model_region == "FLASH" {
        board.code_reserve as u64
    } else {
        0
    };
    if bytes.len() as u64 + reserve > home.length {
        fail(&format!(
            "{name} is {} bytes, but the {} region holds {} bytes{}: \
             choose a smaller or more quantized model (LATTE_MODEL, e.g. a Q4_0 file)",
            bytes.len(),
            home.name,
            home.length,
            if reserve > 0 {
                format!(" with {reserve} kept for code")
            } else {
                String::new()
            }
        ));
    }

    let mut src = String::new();
    let _ = writeln!(src, "/// File name of the model built into this firmware.");
    let _ = writeln!(src, "pub const MODEL_NAME: &str = {name:?};");
    let _ = writeln!(src, "/// Size of the model in bytes.");
    let _ = writeln!(src, "pub const MODEL_BYTES: usize = {};", bytes.len());
    let _ = writeln!(
        src,
        "/// `f32` elements of recurrent state the model needs."
    );
    let _ = writeln!(src, "pub const STATE_LEN: usize = {state_len};");
    let _ = writeln!(src, "/// `f32` elements of scratch the model needs.");
    let _ = writeln!(src, "pub const SCRATCH_LEN: usize = {scratch_len};");
    let _ = writeln!(
        src,
        "/// How the model's attention window (if any) stores keys and values."
    );
    let variant = match ring {
        latte_core::RingStorage::F32 => "F32",
        latte_core::RingStorage::F16 => "F16",
        latte_core::RingStorage::Q8 => "Q8",
    };
    let _ = writeln!(
        src,
        "pub const RING: latte_board::RingStorage = latte_board::RingStorage::{variant};"
    );
    let _ = writeln!(src, "/// The model, read in place.");
    if let Some(section) = board.model_section {
        let _ = writeln!(src, "#[link_section = {section:?}]");
    }
    let _ = writeln!(
        src,
        "pub static MODEL: latte_board::Aligned<[u8; MODEL_BYTES]> = \
         latte_board::Aligned(*include_bytes!({:?}));",
        model_path.display().to_string()
    );
    fs::write(out.join("model.rs"), src).expect("OUT_DIR is writable");
}

/// What a classifier board declares about itself.
pub struct ClassifierBoard<'a> {
    /// The classifier (a `latte-classifier` file), relative to the board's
    /// directory.
    pub model: &'a str,
    /// A folder of messages (relative to the board's directory) built into
    /// flash; every file in it, in name order.
    pub messages: &'a str,
    /// Bytes per chunk of the streamed input (sizes the work area).
    pub chunk: usize,
    /// Bytes of `RAM` kept for the stack.
    pub stack_reserve: usize,
    /// Bytes of `FLASH` kept for code.
    pub code_reserve: usize,
}

/// Configures a classifier board's build: like [`configure`], for a
/// classifier and the messages it labels. Writes `$OUT_DIR/model.rs` with
/// `MODEL_NAME`, `MODEL_BYTES`, `MODEL` (in flash), `SUMMARIES_LEN` and
/// `WORK_LEN` (`f32` elements, sized for `CHUNK`), `CHUNK`, and
/// `MESSAGES: [(&str, &[u8]); N]`.
pub fn configure_classifier(board: ClassifierBoard) {
    let (dir, out, regions) = board_memory();
    let region = |name: &str| region(&regions, name);
    let model_path = dir
        .join(board.model)
        .canonicalize()
        .unwrap_or_else(|e| fail(&format!("model file {}: {e}", board.model)));
    println!("cargo::rerun-if-changed={}", model_path.display());
    let bytes = fs::read(&model_path)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", model_path.display())));
    let (summaries, work) = classifier_sizes(&bytes, board.chunk).unwrap_or_else(|e| {
        fail(&format!(
            "{} is not a classifier this runtime can run: {e}",
            model_path.display()
        ))
    });
    let name = model_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let msg_dir = dir
        .join(board.messages)
        .canonicalize()
        .unwrap_or_else(|e| fail(&format!("messages folder {}: {e}", board.messages)));
    println!("cargo::rerun-if-changed={}", msg_dir.display());
    let mut files: Vec<PathBuf> = fs::read_dir(&msg_dir)
        .unwrap_or_else(|e| fail(&format!("cannot list {}: {e}", msg_dir.display())))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        fail(&format!("{} holds no messages", msg_dir.display()));
    }
    let msg_bytes: u64 = files
        .iter()
        .map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();

    let ram = region("RAM");
    let ram_need = 4 * (summaries + work) as u64 + board.stack_reserve as u64;
    if ram_need > ram.length {
        fail(&format!(
            "{name} needs {ram_need} bytes of RAM (summaries {} + work {} + stack {}), but the \
             RAM region has {}: use a smaller chunk",
            4 * summaries,
            4 * work,
            board.stack_reserve,
            ram.length
        ));
    }
    let flash = region("FLASH");
    let flash_need = bytes.len() as u64 + msg_bytes + board.code_reserve as u64;
    if flash_need > flash.length {
        fail(&format!(
            "{name} ({} bytes) and the messages ({msg_bytes} bytes) with {} kept for code do not \
             fit the {} bytes of FLASH",
            bytes.len(),
            board.code_reserve,
            flash.length
        ));
    }

    let mut src = String::new();
    let _ = writeln!(
        src,
        "/// File name of the classifier built into this firmware."
    );
    let _ = writeln!(src, "pub const MODEL_NAME: &str = {name:?};");
    let _ = writeln!(src, "/// Size of the classifier in bytes.");
    let _ = writeln!(src, "pub const MODEL_BYTES: usize = {};", bytes.len());
    let _ = writeln!(src, "/// `f32` elements of the layers' summaries.");
    let _ = writeln!(src, "pub const SUMMARIES_LEN: usize = {summaries};");
    let _ = writeln!(
        src,
        "/// `f32` elements of the work area for chunks of `CHUNK` bytes."
    );
    let _ = writeln!(src, "pub const WORK_LEN: usize = {work};");
    let _ = writeln!(src, "/// Bytes per chunk of the streamed input.");
    let _ = writeln!(src, "pub const CHUNK: usize = {};", board.chunk);
    let _ = writeln!(src, "/// The classifier, read in place.");
    let _ = writeln!(
        src,
        "pub static MODEL: latte_board::Aligned<[u8; MODEL_BYTES]> = \
         latte_board::Aligned(*include_bytes!({:?}));",
        model_path.display().to_string()
    );
    let _ = writeln!(src, "/// The messages, in flash: file name and bytes.");
    let _ = writeln!(
        src,
        "pub static MESSAGES: [(&str, &[u8]); {}] = [",
        files.len()
    );
    for f in &files {
        let file = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = writeln!(
            src,
            "    ({file:?}, include_bytes!({:?})),",
            f.display().to_string()
        );
    }
    let _ = writeln!(src, "];");
    fs::write(out.join("model.rs"), src).expect("OUT_DIR is writable");
}

/// `(summaries_len, work_len(chunk))` of a classifier file, validated by
/// `latte-core`.
pub fn classifier_sizes(bytes: &[u8], chunk: usize) -> Result<(usize, usize), latte_core::Error> {
    let words = aligned_words(bytes);
    let view: &[u8] = bytemuck::cast_slice(&words);
    let model = latte_core::Classifier::from_gguf(&view[..bytes.len()])?;
    if chunk == 0 || chunk > latte_core::classifier::MAX_CHUNK {
        return Err(latte_core::Error::ChunkSize {
            chunk,
            max: latte_core::classifier::MAX_CHUNK,
        });
    }
    Ok((model.summaries_len(), model.work_len(chunk)))
}

/// `bytes` copied into 4-byte words (the core reads in place and wants
/// 4-byte alignment).
fn aligned_words(bytes: &[u8]) -> Vec<u32> {
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks(4)) {
        let mut b = [0u8; 4];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u32::from_le_bytes(b);
    }
    words
}

/// `(state_len, scratch_len)` of a model file with its window's ring (if
/// any) in `ring`, validated by `latte-core`.
pub fn sizes(
    bytes: &[u8],
    ring: latte_core::RingStorage,
) -> Result<(usize, usize), latte_core::Error> {
    let words = aligned_words(bytes);
    let view: &[u8] = bytemuck::cast_slice(&words);
    let model = latte_core::Model::from_gguf(&view[..bytes.len()])?.with_ring_storage(ring)?;
    Ok((model.state_len(), model.scratch_len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_memory_maps() {
        let m = parse_memory(
            "MEMORY {\n  FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 4M /* c */\n\
             RAM : ORIGIN = 0x2000_0000, LENGTH = 512K\n}\n",
        )
        .unwrap();
        assert_eq!(
            m,
            vec![
                Region {
                    name: "FLASH".into(),
                    origin: 0,
                    length: 4 << 20
                },
                Region {
                    name: "RAM".into(),
                    origin: 0x2000_0000,
                    length: 512 << 10
                },
            ]
        );
        assert!(parse_memory("A : ORIGIN = zz, LENGTH = 1").is_err());
    }

    #[test]
    fn sizes_the_committed_model() {
        let bytes = fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/latte-micro/latte-micro-q8_0.gguf"
        ))
        .unwrap();
        let (state, _scratch) = sizes(&bytes, latte_core::RingStorage::F32).unwrap();
        // 6 layers x (L * D/H + 2 L) with L = 64, D = 128, H = 4 (model card).
        assert_eq!(state, 6 * (64 * 32 + 2 * 64));
        assert!(sizes(&bytes[..100], latte_core::RingStorage::F32).is_err());
        // Macchiato: Latte's state plus, per layer, a ring of 128 entries
        // of keys and values, each 128 values in 4 heads (model card).
        let bytes = fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/latte-macchiato-micro/latte-macchiato-micro-q8_0.gguf"
        ))
        .unwrap();
        for (ring, words) in [
            (latte_core::RingStorage::F32, 128),
            (latte_core::RingStorage::F16, 64),
            (latte_core::RingStorage::Q8, 32 + 4),
        ] {
            let (state, _) = sizes(&bytes, ring).unwrap();
            assert_eq!(state, 6 * (64 * 32 + 2 * 64 + 2 * 128 * words + 2));
        }
    }
}
