//! `nodectl`: the Shoal CLI and console. All behaviour lives in `shoal_nodectl`.

fn main() {
    if std::env::var_os("SHOAL_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("SHOAL_LOG"))
            .init();
    }
    std::process::exit(shoal_nodectl::main_from_args());
}
