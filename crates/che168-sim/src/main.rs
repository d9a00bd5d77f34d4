//! `che168-sim`: serves the simulated CHE168 API for development and demos.
//! Not a carfeed service: it needs no database and no settings file.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = settings::LogSettings {
        level: settings::LogLevel::Info,
        format: settings::LogFormat::Text,
        dir: None,
        retention_days: 7,
    };
    let _guard = match telemetry::init("che168-sim", &log) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("[ERROR] {err:#}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: cli::ServeArgs) -> anyhow::Result<()> {
    let config = args.config();
    let sim = che168_sim::spawn_on(config.clone(), args.bind).await?;
    let catalogue = sim.catalogue();
    tracing::info!(
        "Simulating {} listings ({} pages) and {} days of {} changes ({} to {}); base URL {}",
        catalogue.total_listings(),
        catalogue.pages(),
        catalogue.days(),
        catalogue.changes_per_day(),
        catalogue.first_day(),
        catalogue.today(),
        sim.base_url()
    );
    shutdown_signal().await;
    sim.shutdown().await;
    tracing::info!("Simulator stopped");
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("Received SIGINT, shutting down"),
        () = terminate => tracing::info!("Received SIGTERM, shutting down"),
    }
}
