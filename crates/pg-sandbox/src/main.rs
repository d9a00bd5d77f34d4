//! `pg-sandbox [--durable] -- COMMAND...`: runs COMMAND with `DATABASE_URL`
//! pointing at a throwaway Postgres, then stops the server and exits with
//! COMMAND's exit code. With `DATABASE_URL` already set, COMMAND just runs
//! against that server.

use std::process::{Command, ExitCode};

use pg_sandbox::{PgSandbox, Profile};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let profile = if args.first().map(String::as_str) == Some("--durable") {
        args.remove(0);
        Profile::Durable
    } else {
        Profile::Fast
    };
    if args.first().map(String::as_str) == Some("--") {
        args.remove(0);
    }
    if args.is_empty() || args[0] == "--help" || args[0] == "-h" {
        eprintln!("usage: pg-sandbox [--durable] -- COMMAND [ARGS...]");
        eprintln!("Runs COMMAND with DATABASE_URL set to a throwaway PostgreSQL server.");
        return ExitCode::from(2);
    }

    let sandbox = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            eprintln!("pg-sandbox: using the DATABASE_URL already set");
            None
        }
        _ => match PgSandbox::start(profile) {
            Ok(sandbox) => {
                eprintln!("pg-sandbox: throwaway PostgreSQL at {}", sandbox.url());
                Some(sandbox)
            }
            Err(err) => {
                eprintln!("pg-sandbox: {err:#}");
                return ExitCode::from(2);
            }
        },
    };

    let mut command = Command::new(&args[0]);
    command.args(&args[1..]);
    if let Some(sandbox) = &sandbox {
        command.env("DATABASE_URL", sandbox.url());
    }
    let code = match command.status() {
        Ok(status) => status.code().unwrap_or(1),
        Err(err) => {
            eprintln!("pg-sandbox: cannot run {}: {err}", args[0]);
            127
        }
    };
    drop(sandbox);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
