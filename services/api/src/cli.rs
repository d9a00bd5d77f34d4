//! The command line: `api serve | tokens issue|list|revoke`, plus
//! bootstrap's `migrate` and `check`. It calls the service's commands,
//! never back.

use std::time::Duration;

use bootstrap::{Context, Shared};
use clap::Subcommand;
use db::PgPool;
use settings::Settings;

/// `--help`'s one line.
pub const ABOUT: &str =
    "Serves processed_data to the frontend over an authenticated, rate-limited HTTP API";

#[derive(Subcommand)]
pub enum Command {
    #[command(flatten)]
    Shared(Shared),
    /// Serve the HTTP API on api.bind until SIGTERM or SIGINT.
    Serve,
    /// Issue, list or revoke API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Issue new tokens and print them once (only their hashes are stored).
    Issue {
        /// How many tokens.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
        count: u16,
        /// Who gets them.
        #[arg(long, default_value = "")]
        description: String,
        /// Lifetime, like 30d, 12h or "1year"; none = never expires.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
    },
    /// List tokens: prefix, state, dates, description (never the token).
    List,
    /// Revoke the token whose prefix starts with PREFIX.
    Revoke { prefix: String },
}

impl bootstrap::Command for Command {
    bootstrap::shared_variant!();
}

/// Runs one of the api's own subcommands.
pub async fn execute(ctx: Context, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Shared(_) => unreachable!("bootstrap runs the shared subcommands"),
        Command::Serve => crate::run(ctx).await,
        Command::Tokens(command) => tokens(&ctx.settings, &ctx.pool, command).await,
    }
}

/// Runs a `tokens` subcommand; prints its result on stdout.
pub async fn tokens(
    settings: &Settings,
    pool: &PgPool,
    command: TokensCommand,
) -> anyhow::Result<()> {
    match command {
        TokensCommand::Issue {
            count,
            description,
            expires_in,
        } => {
            let key = crate::config::secret_key(settings)?;
            let issued =
                crate::tokens::issue(pool, &key, count.into(), &description, expires_in).await?;
            // stdout holds only the tokens, one a line, for scripts; they are
            // shown this once and never stored in clear.
            for token in &issued {
                println!("{}", token.expose());
            }
        }
        TokensCommand::List => {
            let rows = db::tokens::list(pool).await?;
            print!("{}", crate::tokens::render_list(&rows, chrono::Utc::now()));
        }
        TokensCommand::Revoke { prefix } => {
            let row = crate::tokens::revoke(pool, &prefix).await?;
            tracing::info!(
                "Revoked token {} ({}); running APIs refuse it within api.token_cache_ttl",
                row.token_prefix,
                row.description
            );
        }
    }
    Ok(())
}
