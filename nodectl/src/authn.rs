//! `nodectl auth ...`: tokens minted from the shared secret, logins, users, roles and
//! revocations of the AuthN service (AIStore's `ais auth` in spirit).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde_json::json;
use shoal_actors::logic::{format as fmt, perm};
use shoal_actors::proto::msg::{AuthOp, AuthReply};

use crate::cli::{AuthCmd, RoleCmd, TokenArgs, TokenCmd, UserCmd, parse_duration, token_file};
use crate::format::Table;
use crate::{CmdResult, Env, Failure};

pub async fn run(env: &Env, cmd: AuthCmd) -> CmdResult {
    match cmd {
        AuthCmd::Token(TokenArgs {
            cmd: Some(TokenCmd::Revoke { revoked, jti, user }),
            ..
        }) => {
            if revoked.is_none() && jti.is_none() && user.is_none() {
                return Err(Failure::usage(
                    "revoke what? give a TOKEN, --jti ID or --user NAME",
                ));
            }
            let r = call(
                env,
                AuthOp::Revoke {
                    token: revoked,
                    jti,
                    user,
                },
            )
            .await?;
            let id = r.revoked.unwrap_or_default();
            let what = if id.starts_with("every token") {
                id.clone()
            } else {
                format!("Token {id}")
            };
            crate::commands::done(
                env,
                json!({ "revoked": id }),
                &format!("{what} revoked on every node."),
            )
        }
        AuthCmd::Token(a) => mint(env, a),
        AuthCmd::Login {
            user,
            password_file,
            ttl,
        } => login(env, user, password_file, ttl).await,
        AuthCmd::Logout => logout(env).await,
        AuthCmd::Whoami => whoami(env).await,
        AuthCmd::User(u) => user(env, u).await,
        AuthCmd::Role(r) => role(env, r).await,
        AuthCmd::S3Key(_) => unreachable!("handled by commands::s3_key"),
    }
}

async fn call(env: &Env, op: AuthOp) -> Result<AuthReply, Failure> {
    Ok(*env.client.rpc(op).await?)
}

/// `nodectl auth token --secret-file F [--admin] [--ttl D] [--sub S]`: unchanged (a contract).
fn mint(env: &Env, a: TokenArgs) -> CmdResult {
    let secret_file = a.secret_file.ok_or_else(|| {
        Failure::usage("auth token needs --secret-file F (or: auth token revoke, auth login)")
    })?;
    let secret = std::fs::read(&secret_file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", secret_file.display())))?;
    // Read the way nodes read it (trimmed, never empty).
    let secret = shoal_actors::logic::auth::Secret::new(&String::from_utf8_lossy(&secret))
        .map_err(|e| Failure::usage(format!("{}: {e}", secret_file.display())))?;
    let ttl = parse_duration(&a.ttl)
        .ok_or_else(|| Failure::usage(format!("bad --ttl {:?} (e.g. 30m, 12h, 7d)", a.ttl)))?;
    let claims = shoal_actors::logic::auth::jwt::Claims {
        sub: a.sub,
        exp: shoal_actors::types::unix_secs() + ttl.as_secs(),
        admin: a.admin,
        iat: Some(shoal_actors::types::unix_secs()),
        cluster: None,
        jti: None,
    };
    let token = shoal_actors::logic::auth::jwt::sign(&claims, secret.bytes())?;
    if env.json {
        println!(
            "{}",
            json!({"token": token, "exp": claims.exp, "admin": a.admin})
        );
    } else {
        println!("{token}");
    }
    Ok(())
}

/// The password: from a file, `$NODECTL_PASSWORD`, or one line of stdin (trailing newline
/// dropped). Never from an argument: those show in `ps`.
fn read_password(file: Option<PathBuf>) -> Result<String, Failure> {
    let raw = match file {
        Some(f) => std::fs::read_to_string(&f)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", f.display())))?,
        None => match std::env::var("NODECTL_PASSWORD") {
            Ok(p) => p,
            Err(_) => {
                if std::io::stdin().is_terminal() {
                    eprint!("Password: ");
                    let _ = std::io::stderr().flush();
                }
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line
            }
        },
    };
    Ok(raw.trim_end_matches(['\n', '\r']).to_string())
}

/// Writes the token so that only its owner can read it (temp file 0600, fsync, rename).
fn save_token(path: &Path, token: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

async fn login(
    env: &Env,
    user: String,
    password_file: Option<PathBuf>,
    ttl: Option<String>,
) -> CmdResult {
    let ttl_secs = match ttl {
        Some(t) => parse_duration(&t)
            .ok_or_else(|| Failure::usage(format!("bad --ttl {t:?} (e.g. 30m, 12h, 7d)")))?
            .as_secs(),
        None => 0,
    };
    let path = token_file()
        .ok_or_else(|| Failure::usage("no config directory: set NODECTL_TOKEN_FILE"))?;
    let password = read_password(password_file)?;
    let r = call(
        env,
        AuthOp::Login {
            user: user.clone(),
            password,
            ttl_secs,
        },
    )
    .await?;
    let token = r
        .token
        .ok_or_else(|| Failure::from(anyhow::anyhow!("the cluster issued no token")))?;
    save_token(&path, &token).map_err(|e| {
        Failure::from(anyhow::anyhow!(
            "cannot save the token in {}: {e}",
            path.display()
        ))
    })?;
    let exp = r.exp.unwrap_or(0);
    crate::commands::done(
        env,
        json!({"user": user, "exp": exp, "token_file": path}),
        &format!(
            "Logged in as {user} for {} (token saved to {}).",
            fmt::duration(exp.saturating_sub(shoal_actors::types::unix_secs())),
            path.display()
        ),
    )
}

async fn logout(env: &Env) -> CmdResult {
    let path = token_file()
        .ok_or_else(|| Failure::usage("no config directory: set NODECTL_TOKEN_FILE"))?;
    let token = match std::fs::read_to_string(&path) {
        Ok(t) => t.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return crate::commands::done(
                env,
                json!({"revoked": null, "token_file": path}),
                "Not logged in.",
            );
        }
        Err(e) => return Err(e.into()),
    };
    // Revoke first, so a copy of the token stops working too; an expired or already revoked
    // token only needs its file removed.
    let revoked = match call(
        env,
        AuthOp::Revoke {
            token: Some(token),
            jti: None,
            user: None,
        },
    )
    .await
    {
        Ok(r) => r.revoked,
        Err(f) => {
            eprintln!(
                "note: the token was not revoked ({})",
                fmt::safe(&f.message)
            );
            None
        }
    };
    std::fs::remove_file(&path)?;
    crate::commands::done(
        env,
        json!({"revoked": revoked, "token_file": path}),
        "Logged out.",
    )
}

async fn whoami(env: &Env) -> CmdResult {
    let r = call(env, AuthOp::WhoAmI).await?;
    let who = r
        .whoami
        .ok_or_else(|| Failure::from(anyhow::anyhow!("no answer")))?;
    if env.json {
        println!("{}", serde_json::to_string(&who).expect("json"));
        return Ok(());
    }
    let p = &who.principal;
    if !who.auth_enabled {
        println!("auth is off: everyone may do everything");
        return Ok(());
    }
    println!("subject: {}", fmt::safe(&p.subject));
    println!(
        "kind:    {}",
        serde_json::to_value(&p.kind)
            .expect("json")
            .as_str()
            .unwrap_or("")
    );
    println!(
        "roles:   {}",
        if p.roles.is_empty() {
            "-".into()
        } else {
            p.roles.join(", ")
        }
    );
    let perms: Vec<String> = p.perms.iter().map(|x| x.to_string()).collect();
    println!(
        "perms:   {}",
        if perms.is_empty() {
            "-".into()
        } else {
            perms.join(", ")
        }
    );
    if let Some(exp) = who.exp {
        let left = exp.saturating_sub(shoal_actors::types::unix_secs());
        println!(
            "expires: in {} ({} UTC)",
            fmt::duration(left),
            fmt::clock(exp)
        );
    }
    Ok(())
}

async fn user(env: &Env, u: UserCmd) -> CmdResult {
    let r = match u {
        UserCmd::Add {
            name,
            roles,
            password_file,
        } => {
            perm::validate_name("user", &name)?;
            let password = read_password(password_file)?;
            // Said here too, before the password travels anywhere.
            perm::validate_password(&name, &password)?;
            call(
                env,
                AuthOp::UserAdd {
                    name: name.clone(),
                    password,
                    roles,
                    password_hash: String::new(),
                },
            )
            .await?;
            return crate::commands::done(
                env,
                json!({"user": name}),
                &format!("User {name} added."),
            );
        }
        UserCmd::Rm { name } => {
            call(env, AuthOp::UserRm { name: name.clone() }).await?;
            return crate::commands::done(
                env,
                json!({"user": name}),
                &format!("User {name} removed; their tokens and S3 keys no longer work."),
            );
        }
        UserCmd::Ls => call(env, AuthOp::UserLs).await?,
    };
    if env.json {
        println!("{}", json!({"users": r.users}));
        return Ok(());
    }
    let mut t = Table::new(&["USER", "ROLES", "CREATED"]);
    for u in &r.users {
        t.plain(vec![
            fmt::safe(&u.name).into_owned(),
            fmt::safe(&u.roles.join(", ")).into_owned(),
            fmt::clock(u.created),
        ]);
    }
    print!("{}", t.render(false));
    Ok(())
}

async fn role(env: &Env, r: RoleCmd) -> CmdResult {
    let res = match r {
        RoleCmd::Add { name, perms, desc } => {
            let perms = perms
                .iter()
                .map(|p| perm::parse_perm(p))
                .collect::<Result<Vec<_>, _>>()?;
            call(
                env,
                AuthOp::RoleAdd {
                    name: name.clone(),
                    desc,
                    perms,
                },
            )
            .await?;
            return crate::commands::done(
                env,
                json!({"role": name}),
                &format!("Role {name} added."),
            );
        }
        RoleCmd::Rm { name } => {
            call(env, AuthOp::RoleRm { name: name.clone() }).await?;
            return crate::commands::done(
                env,
                json!({"role": name}),
                &format!("Role {name} removed."),
            );
        }
        RoleCmd::Ls => call(env, AuthOp::RoleLs).await?,
    };
    let perms = |r: &shoal_actors::types::auth::RoleDef| {
        r.perms.iter().map(|p| p.to_string()).collect::<Vec<_>>()
    };
    if env.json {
        let roles: Vec<_> = res
            .roles
            .iter()
            .map(|r| json!({"name": r.name, "desc": r.desc, "perms": perms(r), "builtin": perm::is_builtin(&r.name)}))
            .collect();
        println!("{}", json!({ "roles": roles }));
        return Ok(());
    }
    let mut t = Table::new(&["ROLE", "PERMISSIONS", "DESCRIPTION"]);
    for r in &res.roles {
        // Descriptions are free text: shown safely.
        t.plain(vec![
            fmt::safe(&r.name).into_owned(),
            perms(r).join(", "),
            fmt::safe(&r.desc).into_owned(),
        ]);
    }
    print!("{}", t.render(false));
    Ok(())
}
