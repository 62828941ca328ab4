//! Shoal operator console (being built on branch `console`; this is the entry point nodectl calls).

use std::time::Duration;

pub struct ConsoleOptions {
    pub refresh: Duration,
    pub readonly: bool,
}

pub async fn run(client: shoal_actors::client::Client, opts: ConsoleOptions) -> anyhow::Result<()> {
    let _ = (client, opts);
    anyhow::bail!("the console is not built yet")
}
