//! `orgsvc [--config FILE] [serve|migrate|openapi|keys list|keys rotate|
//! operator-keys create|list|revoke|tenants move]`:
//! the Organization Management Service.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use orgsvc_api::config::Settings;
use orgsvc_api::key_commands;
use orgsvc_api::openapi;
use orgsvc_api::operator_key_commands;
use orgsvc_api::problem::ErrorChain;
use orgsvc_api::startup::{self, Command, StartupError};
use orgsvc_api::telemetry;
use orgsvc_api::tenant_commands;
use orgsvc_domain::{OperatorScope, TenantLayout};

/// Multi-tenant Organization Management Service.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// TOML settings file (keys as in the README); environment variables
    /// `ORGSVC__SECTION__KEY` override it.
    #[arg(long, value_name = "FILE", env = "ORGSVC_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<CliCommand>,
}

#[derive(Clone, Debug, Subcommand)]
enum CliCommand {
    /// Migrate the store, then serve HTTP (the default).
    Serve,
    /// Migrate the store and exit.
    Migrate,
    /// Print the OpenAPI document (as committed in `openapi.json`) and exit;
    /// reads no settings and opens no store.
    Openapi,
    /// The signing key set of the access tokens (on the embedded store,
    /// stop the service first: its file is locked while it runs).
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Operator API keys (`osk_...`, for the `/operator/*` routes). On the
    /// embedded store, stop the service first (its file is locked while it
    /// runs; manage keys through `/operator/keys` then); on MongoDB they
    /// work at any time.
    OperatorKeys {
        #[command(subcommand)]
        action: OperatorKeysCommand,
    },
    /// Organizations' storage on MongoDB (see the README, "Choosing a
    /// MongoDB layout").
    Tenants {
        #[command(subcommand)]
        action: TenantsCommand,
    },
}

#[derive(Clone, Debug, Subcommand)]
enum TenantsCommand {
    /// Move organizations' documents to another layout: crash-safe (a move
    /// interrupted is completed by the service's reconciliation or by
    /// running this again), while the service runs (document writes to an
    /// organization being moved answer 503 with Retry-After). Moving to the
    /// layout an organization is in does nothing.
    Move {
        /// The organization: its name or its id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        organization: Option<String>,
        /// Every organization, a page at a time, with progress on stderr.
        #[arg(long)]
        all: bool,
        /// The layout to move to.
        #[arg(long, value_enum)]
        to: Layout,
    },
}

/// A MongoDB layout on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Layout {
    /// Every organization's documents in one collection, tenant_documents.
    Shared,
    /// A collection of its own, org_<name>.
    Collection,
}

impl From<Layout> for TenantLayout {
    fn from(layout: Layout) -> Self {
        match layout {
            Layout::Shared => Self::Shared,
            Layout::Collection => Self::Collection,
        }
    }
}

#[derive(Clone, Debug, Subcommand)]
enum OperatorKeysCommand {
    /// Create a key and print it on stdout, this once (only its SHA-256 is
    /// stored).
    Create {
        /// Unique name: 2 to 64 lowercase letters, digits and hyphens.
        #[arg(long)]
        name: String,
        /// What the key may do.
        #[arg(long, value_enum, default_value_t = Scope::Read)]
        scope: Scope,
        /// Seconds until the key stops working (1 to 316224000); never
        /// when left out.
        #[arg(long, value_name = "SECS")]
        expires_in: Option<u64>,
    },
    /// Print every key (name, scope, state, times; never a key or hash).
    List,
    /// Revoke a key: every instance refuses it from its next request on.
    Revoke {
        /// The key's name.
        name: String,
    },
}

/// An operator key's scope on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scope {
    /// Read-only operations.
    Read,
    /// Every operation, key management included.
    Write,
}

impl From<Scope> for OperatorScope {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::Read => Self::Read,
            Scope::Write => Self::Write,
        }
    }
}

#[derive(Clone, Copy, Debug, Subcommand)]
enum KeysCommand {
    /// Print every key (kid, algorithm, state, times; never a private key).
    List,
    /// Add a new key now: published at once, it starts signing
    /// `auth.signing.publish_ahead_secs` later; the active key then retires
    /// and stays published until its tokens have expired.
    Rotate,
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        None | Some(CliCommand::Serve) => Command::Serve,
        Some(CliCommand::Migrate) => Command::Migrate,
        Some(CliCommand::Openapi) => return print_openapi(),
        Some(CliCommand::Keys { action }) => return keys(cli.config, action).await,
        Some(CliCommand::OperatorKeys { action }) => {
            return operator_keys(cli.config, action).await
        }
        Some(CliCommand::Tenants { action }) => return tenants(cli.config, action).await,
    };
    match start(cli.config, command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %ErrorChain(&error), "orgsvc stopped");
            eprintln!("orgsvc: {}", ErrorChain(&error));
            ExitCode::from(error.exit_code())
        }
    }
}

/// Writes the OpenAPI document to stdout, as `openapi.json` holds it.
fn print_openapi() -> ExitCode {
    let written = openapi::document()
        .to_pretty_json()
        .map_err(io::Error::other)
        .and_then(|json| writeln!(io::stdout().lock(), "{json}"));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("orgsvc: could not write the OpenAPI document: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `orgsvc keys ...`, printing to stdout.
async fn keys(config: Option<PathBuf>, action: KeysCommand) -> ExitCode {
    let result = async {
        let settings = Settings::load(config.as_deref())?;
        telemetry::init_on_stderr(&settings.log)?;
        match action {
            KeysCommand::List => {
                Ok::<_, StartupError>(key_commands::table(&key_commands::list(&settings).await?))
            }
            KeysCommand::Rotate => {
                let (set, kid) = key_commands::rotate(&settings).await?;
                let when = key_commands::when_it_signs(&settings, &set, &kid);
                Ok(format!(
                    "added key {kid}: {when}\n{}",
                    key_commands::table(&set)
                ))
            }
        }
    };
    match result.await {
        Ok(text) => match write!(io::stdout().lock(), "{text}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Err(error) => {
            eprintln!("orgsvc: {}", ErrorChain(&error));
            ExitCode::from(error.exit_code())
        }
    }
}

/// Runs `orgsvc operator-keys ...`: the key (of `create`) or the table (of
/// `list`) on stdout, everything else on stderr.
async fn operator_keys(config: Option<PathBuf>, action: OperatorKeysCommand) -> ExitCode {
    let result = async {
        let settings = Settings::load(config.as_deref())?;
        telemetry::init_on_stderr(&settings.log)?;
        match action {
            OperatorKeysCommand::Create {
                name,
                scope,
                expires_in,
            } => {
                let created =
                    operator_key_commands::create(&settings, &name, scope.into(), expires_in)
                        .await?;
                let expires = created
                    .key
                    .expires_at
                    .map_or_else(|| "never".to_owned(), |at| at.to_rfc3339());
                eprintln!(
                    "orgsvc: created operator key {} (scope {}, expires {expires}); it is printed \
                     on stdout and will not be shown again",
                    created.key.name, created.key.scope
                );
                Ok::<_, StartupError>(format!("{}\n", created.secret.expose()))
            }
            OperatorKeysCommand::List => Ok(operator_key_commands::table(
                &operator_key_commands::list(&settings).await?,
            )),
            OperatorKeysCommand::Revoke { name } => {
                let key = operator_key_commands::revoke(&settings, &name).await?;
                let at = key
                    .revoked_at
                    .map_or_else(String::new, |at| at.to_rfc3339());
                eprintln!("orgsvc: operator key {} is revoked (since {at})", key.name);
                Ok(String::new())
            }
        }
    };
    match result.await {
        Ok(text) => match write!(io::stdout().lock(), "{text}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Err(error) => {
            eprintln!("orgsvc: {}", ErrorChain(&error));
            ExitCode::from(error.exit_code())
        }
    }
}

/// Runs `orgsvc tenants ...`: the outcome and progress on stderr.
async fn tenants(config: Option<PathBuf>, action: TenantsCommand) -> ExitCode {
    let TenantsCommand::Move {
        organization,
        all: _,
        to,
    } = action;
    let to = TenantLayout::from(to);
    let result = async {
        let settings = Settings::load(config.as_deref()).map_err(StartupError::from)?;
        telemetry::init_on_stderr(&settings.log).map_err(StartupError::from)?;
        match organization {
            Some(organization) => {
                let moved = tenant_commands::move_one(&settings, &organization, to).await?;
                eprintln!("orgsvc: {}", tenant_commands::outcome_line(&moved, to));
            }
            None => {
                tenant_commands::move_all(&settings, to, |progress| {
                    eprintln!("orgsvc: {}", tenant_commands::progress_line(progress, to));
                })
                .await?;
            }
        }
        Ok::<_, tenant_commands::TenantCommandError>(())
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("orgsvc: {}", ErrorChain(&error));
            ExitCode::from(error.exit_code())
        }
    }
}

async fn start(config: Option<PathBuf>, command: Command) -> Result<(), StartupError> {
    let settings = Settings::load(config.as_deref())?;
    telemetry::init(&settings.log)?;
    startup::run(settings, command).await
}
