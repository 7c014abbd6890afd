//! The `maestral` executable: everything lives in the library crate (see `lib.rs`).

fn main() -> std::process::ExitCode {
    maestral::cli::main()
}
