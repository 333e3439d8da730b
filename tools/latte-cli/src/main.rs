//! The `latte` binary (everything is in the library, `src/lib.rs`).
fn main() -> std::process::ExitCode {
    latte_cli::cli_main()
}
