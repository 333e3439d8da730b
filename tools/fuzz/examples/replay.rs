//! Runs one target's body over files or directories of inputs without
//! libFuzzer (stable toolchain, no sanitizer): `cargo run --example replay --
//! TARGET PATH...`. A panic names the input that caused it.

use std::path::{Path, PathBuf};

fn files(p: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if p.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(p)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.path());
        for e in entries {
            files(&e.path(), out)?;
        }
    } else {
        out.push(p.to_path_buf());
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_default();
    let body: fn(&[u8]) = match target.as_str() {
        "gguf_parse" => latte_fuzz::targets::gguf_parse,
        "load_and_step" => latte_fuzz::targets::load_and_step,
        "snapshot_restore" => latte_fuzz::targets::snapshot_restore,
        _ => {
            eprintln!("usage: replay gguf_parse|load_and_step|snapshot_restore PATH...");
            std::process::exit(2);
        }
    };
    let mut inputs = Vec::new();
    for p in args {
        files(Path::new(&p), &mut inputs)?;
    }
    for p in &inputs {
        eprintln!("{}", p.display());
        body(&std::fs::read(p)?);
    }
    println!("{target}: {} inputs ran clean", inputs.len());
    Ok(())
}
