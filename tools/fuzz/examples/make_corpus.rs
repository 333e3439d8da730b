//! Writes the seed corpus to `corpus/<target>/` next to this crate's manifest
//! (`cargo run --example make_corpus` in tools/fuzz).

use std::path::Path;

fn main() -> std::io::Result<()> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = here.join("../../models/latte-micro");
    let mut n = 0;
    for (target, name, bytes) in latte_fuzz::seeds::all(Some(&committed)) {
        let dir = here.join("corpus").join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        n += 1;
    }
    println!("wrote {n} seeds under {}", here.join("corpus").display());
    Ok(())
}
