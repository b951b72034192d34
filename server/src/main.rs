//! The `farsight` command line: parses arguments and hands over to the library (`serve`) or
//! to the subcommands in [`cli`].

mod cli;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use farsight_server::config::{ServeArgs, ServeConfig, StorageArgs};
use farsight_server::outreach::import;

use cli::outreach::ImportCommand;
use cli::{audit, model, open_store, outreach, probe, simulate, tokens};

#[derive(Debug, Parser)]
#[command(
    name = "farsight",
    version,
    about = "AR remote-assist relay and outreach server"
)]
struct Cli {
    #[command(flatten)]
    storage: StorageArgs,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "FARSIGHT_LOG_JSON", global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the relay (QUIC) and the HTTP API.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage access tokens.
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// Show the newest entries of the audit log: sign-ins, joins, marks and credentials.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// The reference client: publish test video or watch a session.
    #[command(subcommand)]
    Probe(probe::ProbeCommand),
    /// Usage events: import from a file.
    #[command(subcommand)]
    Events(outreach::ImportCommand),
    /// User profiles: import from a file.
    #[command(subcommand)]
    Users(outreach::ImportCommand),
    /// Write a synthetic usage history (users.ndjson and events.ndjson) for demos and tests.
    Simulate {
        #[arg(long, default_value_t = 1000)]
        users: usize,
        #[arg(long, default_value_t = 60)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// First simulated day, YYYY-MM-DD (default: `days` days before today).
        #[arg(long)]
        start: Option<jiff::civil::Date>,
        /// Directory to write into.
        #[arg(long, default_value = "simulated")]
        out: PathBuf,
    },
    /// The prediction model.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Proactive calls: the policy, a scheduling pass, the report.
    #[command(subcommand)]
    Outreach(outreach::OutreachCommand),
    /// The highest predicted needs, with their reasons.
    Predictions {
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// Output JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    match cli.command {
        Command::Serve(args) => serve(ServeConfig::resolve(&cli.storage, &args)?).await,
        Command::Migrate => {
            let store = open_store(&cli.storage).await?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Token(cmd) => tokens::run(&cli.storage, cmd).await,
        Command::Audit { limit } => audit::run(&cli.storage, limit).await,
        Command::Probe(cmd) => probe::run(&cli.storage, cmd).await,
        Command::Events(ImportCommand::Import { file }) => {
            outreach::import(&cli.storage, &file, import::What::Events).await
        }
        Command::Users(ImportCommand::Import { file }) => {
            outreach::import(&cli.storage, &file, import::What::Users).await
        }
        Command::Simulate {
            users,
            days,
            seed,
            start,
            out,
        } => simulate::write_files(users, days, seed, start, &out),
        Command::Model(cmd) => model::run(&cli.storage, cmd).await,
        Command::Outreach(cmd) => outreach::run(&cli.storage, cmd).await,
        Command::Predictions { top, json } => model::predictions(&cli.storage, top, json).await,
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a log redirected to a file stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let running = farsight_server::start(&config).await?;
    tracing::info!(
        quic = %running.quic_addr,
        http = %running.http_addr,
        database = %farsight_server::redact(&config.database_url),
        "farsight serving"
    );
    let scheme = if running.shared.https {
        "https"
    } else {
        "http"
    };
    // Written, not printed: a closed stdout must not take the server down.
    let _ = writeln!(
        std::io::stdout(),
        "QUIC   {} (ALPN farsight/1)\nHTTP   {scheme}://{}\ncertificate SHA-256 {}\nconsole {scheme}://{}/ (WebTransport on UDP {})",
        running.quic_addr,
        running.http_addr,
        running.fingerprint,
        running.http_addr,
        running.webtransport_addr
    );
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}
