//! `nodectl`: the scriptable CLI of Shoal (DESIGN §11). Every command takes `--json` and prints
//! one JSON document with stable keys; human output follows AIStore's wording.
//!
//! Exit codes: 0 success, 1 error, 2 usage error, 3 refused (busy / unauthorized / forbidden),
//! 4 timeout (`wait`).

mod authn;
pub mod cli;
mod commands;
mod completion;
pub mod format;
pub mod playground;
mod storage;

use std::io::IsTerminal;
use std::time::Duration;

use clap::Parser;
use shoal_actors::client::Client;

pub use cli::Cli;
/// What `show cluster` prints for the targets and the proxies (public for its bench).
pub use commands::{proxies_table, targets_table};

/// Exit codes as documented in DESIGN §11.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const REFUSED: i32 = 3;
    pub const TIMEOUT: i32 = 4;
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn usage(m: impl Into<String>) -> Self {
        Failure {
            code: exit::USAGE,
            message: m.into(),
        }
    }
    pub fn timeout(m: impl Into<String>) -> Self {
        Failure {
            code: exit::TIMEOUT,
            message: m.into(),
        }
    }
}

impl From<shoal_actors::Error> for Failure {
    fn from(e: shoal_actors::Error) -> Self {
        use shoal_actors::Error as E;
        let (code, message) = match &e {
            E::Busy(m) => (exit::REFUSED, format!("ErrBusy: {m}")),
            E::Unauthorized(_) | E::Forbidden(_) => (exit::REFUSED, e.to_string()),
            E::Timeout(_) => (exit::TIMEOUT, e.to_string()),
            E::BadRequest(m) => (exit::ERROR, m.clone()),
            E::NotFound(m) => (exit::ERROR, m.clone()),
            _ => (exit::ERROR, e.to_string()),
        };
        Failure { code, message }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<shoal_actors::Error>() {
            Ok(se) => se.into(),
            Err(e) => Failure {
                code: exit::ERROR,
                message: format!("{e:#}"),
            },
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure {
            code: exit::ERROR,
            message: e.to_string(),
        }
    }
}

pub type CmdResult = Result<(), Failure>;

/// Global options every command sees.
pub struct Env {
    pub client: Client,
    pub json: bool,
    /// Stdout is a terminal (progress bars, colours).
    pub tty: bool,
}

/// Runs `nodectl` with process arguments; returns the exit code.
pub fn main_from_args() -> i32 {
    completion::answer_if_asked();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    run(cli)
}

pub fn run(cli: Cli) -> i32 {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return exit::ERROR;
        }
    };
    let json = cli.json;
    let res = rt.block_on(async move {
        let endpoint = cli::resolve_endpoint(cli.endpoint.clone());
        let token = cli::resolve_token(cli.token.clone());
        let env = Env {
            client: Client::new(endpoint)
                .with_token(token)
                .with_timeout(Duration::from_secs(cli.timeout_secs)),
            json: cli.json,
            tty: std::io::stdout().is_terminal(),
        };
        commands::dispatch(&env, cli.command).await
    });
    // Child processes (playground) must not outlive a failed start; the runtime drops here.
    match res {
        Ok(()) => exit::OK,
        // The command printed its answer already (a pre-check's "no"): the code says the rest.
        Err(f) if f.message.is_empty() => f.code,
        Err(f) => {
            if json {
                let doc = serde_json::json!({ "error": f.message, "exit_code": f.code });
                println!("{doc}");
            } else {
                // Errors can quote names from the cluster: print them safely.
                eprintln!("Error: {}", crate::format::safe(&f.message));
            }
            f.code
        }
    }
}
