//! `nodectl`: the Shoal CLI and console. All behaviour lives in `shoal_nodectl`.

use std::io::IsTerminal;

fn main() {
    // Logs go to stderr, except under the full-screen console where they would garble it.
    let full_screen = std::env::args().any(|a| a == "console" || a == "playground")
        && std::io::stderr().is_terminal();
    if std::env::var_os("SHOAL_LOG").is_some() && !full_screen {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("SHOAL_LOG"))
            .init();
    }
    std::process::exit(shoal_nodectl::main_from_args());
}
