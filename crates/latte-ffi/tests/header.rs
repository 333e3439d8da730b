//! `include/latte.h` is what cbindgen generates from `src/lib.rs` now: the
//! committed header can never go stale. `LATTE_BLESS=1 cargo test -p
//! latte-ffi --test header` rewrites it after an API change.

use std::path::Path;

#[test]
fn committed_header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen cannot read src/lib.rs")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("utf-8");
    let path = dir.join("include/latte.h");
    if std::env::var_os("LATTE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/latte.h");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/latte.h is stale: the API in src/lib.rs changed. Run \
         `LATTE_BLESS=1 cargo test -p latte-ffi --test header` and commit the header."
    );
}
