//! The `dealdesk` binary: a thin shell over the library's CLI.

fn main() -> std::process::ExitCode {
    dealdesk::cli::main()
}
