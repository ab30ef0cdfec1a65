//! The `gatehouse` command line: `serve` (default), `migrate`, `create-admin`, `branding`, `mfa`,
//! `sms`, `providers`, `apps`, `keys`.

use std::path::PathBuf;
use std::process::ExitCode;

use gatehouse_app::branding::Branding;
use gatehouse_server::config::{Config, SETTINGS};
use gatehouse_server::{build_state, http, open_store, system_clock, BRANDING_SETTING};

const USAGE: &str = "Gatehouse: customer identity and access management.

Usage: gatehouse [--config FILE] [COMMAND]

Commands:
  serve                         Run the server (the default)
  migrate                       Apply database migrations and exit
  create-admin --email EMAIL [--name NAME]
                                Create the first administrator (or make an account one).
                                The new account signs in with an email code.
  branding show                 Print the current branding record (JSON)
  branding set FILE             Replace the branding record from a JSON or TOML file
  mfa show                      Print the multifactor policy
  mfa require | mfa optional    Require a second factor of every account (accounts without
                                one add it right after signing in), or leave it to each user
  reset-mfa --email EMAIL       Remove every second factor and recovery code of an account and
                                end its sessions (after verifying the person out of band)
  sms show                      Print the countries texts may be sent to
  sms countries CODES | all     Allow texts only to numbers with these country calling codes
                                (comma-separated, e.g. 1,44,49), or to every country
  providers list                List the sign-in providers (secrets are never printed)
  providers add ID --kind KIND --client-id CLIENT_ID [options]
                                Add a sign-in provider, or replace the one with this id.
                                KIND: oidc, google, microsoft, apple, facebook, github.
                                The secret is read from --client-secret-env VAR or
                                --client-secret-file FILE (never from the command line) and
                                stored encrypted. Options: --name NAME, --issuer URL (oidc),
                                --tenant ID (microsoft), --scopes 'a b c',
                                --apple-team-id ID --apple-key-id ID --apple-key-file FILE.p8,
                                --authorization-endpoint URL, --token-endpoint URL,
                                --userinfo-endpoint URL, --jwks-uri URL, --emails-endpoint URL,
                                --email-claim C, --email-verified-claim C, --name-claim C,
                                --disabled
  providers enable ID | disable ID | remove ID
  providers move ID POSITION    Order the buttons (lower positions first)
  apps list                     List the applications (OpenID Connect clients)
  apps add --name NAME (--confidential | --public) --redirect-uri URI [options]
                                Register an application. Repeatable: --redirect-uri,
                                --post-logout-uri, --grant (authorization_code,
                                refresh_token, client_credentials), --origin (CORS).
                                Options: --third-party (ask consent), --logo URL,
                                --id-token-alg ES256|EdDSA|RS256, --backchannel-logout-uri URL,
                                --secret-out FILE (write the secret there, owner-only, instead
                                of printing it). A confidential client's secret is shown once.
  apps rotate-secret ID [--secret-out FILE]
                                Replace an application's secret (the old one stops working)
  apps remove ID                Delete an application and every token it holds
  keys rotate                   New token signing keys; the old ones stay published until
                                the tokens they signed have expired
  help, --help                  Show this help

Settings (environment variables; the same keys, lower case without GATEHOUSE_, in the TOML
file named by --config or GATEHOUSE_CONFIG):";

fn print_help() {
    println!("{USAGE}");
    for (name, default, meaning) in SETTINGS {
        println!("  {name}\n      {meaning}\n      default: {default}");
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("gatehouse: {message}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut config_file: Option<PathBuf> = None;
    if let Some(i) = args.iter().position(|a| a == "--config") {
        if i + 1 >= args.len() {
            return fail("--config needs a file");
        }
        config_file = Some(PathBuf::from(args.remove(i + 1)));
        args.remove(i);
    }
    if args
        .iter()
        .any(|a| a == "--help" || a == "-h" || a == "help")
    {
        print_help();
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    let config = match Config::from_env(config_file.as_deref()) {
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
    runtime.block_on(run(args, config))
}

async fn run(args: Vec<String>, config: Config) -> ExitCode {
    match args.first().map(String::as_str) {
        None | Some("serve") => serve(config).await,
        Some("migrate") => match open_store(&config).await {
            Ok(_) => {
                println!("migrations applied");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Some("create-admin") => create_admin(&args[1..], config).await,
        Some("branding") => branding(&args[1..], config).await,
        Some("mfa") => mfa(&args[1..], config).await,
        Some("sms") => sms(&args[1..], config).await,
        Some("reset-mfa") => reset_mfa(&args[1..], config).await,
        Some("providers") => providers(&args[1..], config).await,
        Some("apps") => apps(&args[1..], config).await,
        Some("keys") => keys(&args[1..], config).await,
        Some(other) => fail(format!("unknown command {other:?}; see gatehouse --help")),
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
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot listen on {listen}: {e}")),
    };
    let users = state.store().count_users().await.unwrap_or(0);
    println!("Gatehouse is running at {origin}/ (listening on {listen})");
    if users == 0 {
        println!(
            "Create the first administrator with: gatehouse create-admin --email you@example.com"
        );
    }
    let store = state.store().clone();
    let result = http::serve(listener, state, shutdown_signal()).await;
    housekeeping.abort();
    store.close().await;
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

async fn create_admin(args: &[String], config: Config) -> ExitCode {
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let Some(email) = value("--email") else {
        return fail("create-admin needs --email EMAIL");
    };
    let name = value("--name").unwrap_or_else(|| "Administrator".into());
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match state
        .identity
        .create_admin(&email, &name, state.now())
        .await
    {
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

async fn branding(args: &[String], config: Config) -> ExitCode {
    let store = match open_store(&config).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match (args.first().map(String::as_str), args.get(1)) {
        (Some("show"), _) => {
            let current = match store.get_setting(BRANDING_SETTING).await {
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
        (Some("set"), Some(file)) => {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => return fail(format!("cannot read {file}: {e}")),
            };
            let parsed: Result<Branding, String> = if file.ends_with(".toml") {
                toml::from_str(&text).map_err(|e| e.message().to_string())
            } else {
                serde_json::from_str(&text).map_err(|e| e.to_string())
            };
            let branding = match parsed {
                Ok(b) => b,
                Err(e) => return fail(format!("{file} is not a valid branding record: {e}")),
            };
            if let Err(p) = branding.validate() {
                return fail(format!("branding.{}: {}", p.field, p.reason));
            }
            let json = match serde_json::to_string(&branding) {
                Ok(j) => j,
                Err(e) => return fail(e),
            };
            let now = gatehouse_core::clock::Clock::now_ms(&gatehouse_core::clock::SystemClock);
            match store.put_setting(BRANDING_SETTING, &json, now).await {
                Ok(()) => {
                    println!("branding updated");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        _ => fail("usage: gatehouse branding show | gatehouse branding set FILE"),
    }
}

async fn mfa(args: &[String], config: Config) -> ExitCode {
    use gatehouse_core::identity::MfaPolicy;
    let require = match args.first().map(String::as_str) {
        Some("show") => None,
        Some("require") => Some(true),
        Some("optional") => Some(false),
        _ => {
            return fail(
                "usage: gatehouse mfa show | gatehouse mfa require | gatehouse mfa optional",
            )
        }
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
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

async fn sms(args: &[String], config: Config) -> ExitCode {
    use gatehouse_core::identity::SmsPolicy;
    use gatehouse_core::phone::is_calling_code;
    let usage = "usage: gatehouse sms show | gatehouse sms countries CODES (e.g. 1,44,49) | gatehouse sms countries all";
    let update = match (
        args.first().map(String::as_str),
        args.get(1).map(String::as_str),
    ) {
        (Some("show"), None) => None,
        (Some("countries"), Some("all")) => Some(Vec::new()),
        (Some("countries"), Some(list)) => {
            let mut codes = Vec::new();
            for code in list.split(',').map(|c| c.trim().trim_start_matches('+')) {
                if !is_calling_code(code) {
                    return fail(format!("{code:?} is not a country calling code; {usage}"));
                }
                codes.push(code.to_string());
            }
            Some(codes)
        }
        _ => return fail(usage),
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

async fn reset_mfa(args: &[String], config: Config) -> ExitCode {
    let Some(email) = args
        .iter()
        .position(|a| a == "--email")
        .and_then(|i| args.get(i + 1))
    else {
        return fail("reset-mfa needs --email EMAIL");
    };
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

async fn providers(args: &[String], config: Config) -> ExitCode {
    use gatehouse_core::identity::{
        AppleSigning, ClaimMapping, Endpoints, ProviderInput, ProviderKind,
    };
    use gatehouse_core::secret::SecretString;
    let usage = "usage: gatehouse providers list | add ID --kind KIND --client-id ID [options] | \
                 enable ID | disable ID | remove ID | move ID POSITION (see gatehouse --help)";
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let command = args.first().map(String::as_str);
    let id = args.get(1).cloned().unwrap_or_default();
    let input = if command == Some("add") {
        let Some(kind) = value("--kind").and_then(|k| ProviderKind::parse(&k)) else {
            return fail("providers add needs --kind oidc|google|microsoft|apple|facebook|github");
        };
        let Some(client_id) = value("--client-id") else {
            return fail("providers add needs --client-id");
        };
        let read_file = |path: String| {
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))
        };
        let secret = match (
            value("--client-secret-env"),
            value("--client-secret-file"),
            value("--apple-key-file"),
        ) {
            (Some(var), _, _) => match std::env::var(&var) {
                Ok(v) => Some(SecretString::new(v)),
                Err(_) => return fail(format!("the environment variable {var} is not set")),
            },
            (None, Some(path), _) | (None, None, Some(path)) => match read_file(path) {
                Ok(v) => Some(SecretString::new(v)),
                Err(e) => return fail(e),
            },
            (None, None, None) => None,
        };
        let apple = match (value("--apple-team-id"), value("--apple-key-id")) {
            (Some(team_id), Some(key_id)) => Some(AppleSigning { team_id, key_id }),
            _ => None,
        };
        let defaults = ClaimMapping::default();
        Some(ProviderInput {
            id: id.clone(),
            kind,
            display_name: value("--name"),
            issuer: value("--issuer"),
            tenant: value("--tenant"),
            client_id,
            secret,
            scopes: value("--scopes").map(|s| s.split_whitespace().map(str::to_string).collect()),
            claims: ClaimMapping {
                email: value("--email-claim").unwrap_or(defaults.email),
                email_verified: value("--email-verified-claim").unwrap_or(defaults.email_verified),
                name: value("--name-claim").unwrap_or(defaults.name),
            },
            endpoints: Endpoints {
                authorization: value("--authorization-endpoint"),
                token: value("--token-endpoint"),
                userinfo: value("--userinfo-endpoint"),
                jwks: value("--jwks-uri"),
                emails: value("--emails-endpoint"),
            },
            apple,
            enabled: !args.iter().any(|a| a == "--disabled"),
        })
    } else {
        None
    };
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let now = state.now();
    let identity = &state.identity;
    let changed = match (command, input) {
        (Some("list"), _) => Ok(true),
        (Some("add"), Some(input)) => match identity.put_provider(input, now).await {
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
        (Some("enable"), _) => identity.set_provider_enabled(&id, true, now).await,
        (Some("disable"), _) => identity.set_provider_enabled(&id, false, now).await,
        (Some("remove"), _) => identity.remove_provider(&id).await,
        (Some("move"), _) => match args.get(2).and_then(|p| p.parse::<i64>().ok()) {
            Some(position) => identity.set_provider_position(&id, position, now).await,
            None => return fail(usage),
        },
        _ => return fail(usage),
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
fn deliver_secret(secret: &str, out: Option<&String>) -> Result<(), String> {
    match out {
        None => {
            println!("client secret (shown once): {secret}");
            Ok(())
        }
        Some(path) => {
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
                .map_err(|e| format!("cannot write {path}: {e}"))?;
            // The mode above applies only to a new file: an existing one is made owner-only too.
            gatehouse_server::set_mode(std::path::Path::new(path), 0o600)
                .map_err(|e| format!("cannot write {path}: {e}"))?;
            file.write_all(secret.as_bytes())
                .map_err(|e| format!("cannot write {path}: {e}"))?;
            println!("client secret written to {path}");
            Ok(())
        }
    }
}

async fn apps(args: &[String], config: Config) -> ExitCode {
    use gatehouse_core::identity::oidc::ClientInput;
    let usage = "usage: gatehouse apps list | add --name NAME (--confidential | --public) \
                 --redirect-uri URI [options] | rotate-secret ID | remove ID (see gatehouse --help)";
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let values = |flag: &str| -> Vec<String> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].clone())
            .collect()
    };
    let flag = |f: &str| args.iter().any(|a| a == f);
    let command = args.first().map(String::as_str);
    let state = match build_state(config, system_clock()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let now = state.now();
    let identity = &state.identity;
    match command {
        Some("list") => {}
        Some("add") => {
            if flag("--confidential") == flag("--public") {
                return fail("apps add needs exactly one of --confidential and --public");
            }
            let input = ClientInput {
                name: value("--name").unwrap_or_default(),
                logo_url: value("--logo"),
                confidential: flag("--confidential"),
                redirect_uris: values("--redirect-uri"),
                post_logout_redirect_uris: values("--post-logout-uri"),
                grant_types: values("--grant"),
                allowed_origins: values("--origin"),
                first_party: !flag("--third-party"),
                id_token_alg: value("--id-token-alg"),
                backchannel_logout_uri: value("--backchannel-logout-uri"),
            };
            match identity.register_client(&input, now).await {
                Ok(registered) => {
                    println!(
                        "application registered; client id: {}",
                        registered.client.id
                    );
                    if let Some(secret) = &registered.secret {
                        if let Err(e) =
                            deliver_secret(secret.expose(), value("--secret-out").as_ref())
                        {
                            return fail(e);
                        }
                    }
                }
                Err(problem) => return fail(problem),
            }
        }
        Some("rotate-secret") => {
            let id = args.get(1).cloned().unwrap_or_default();
            match identity.rotate_client_secret(&id, now).await {
                Ok(secret) => {
                    if let Err(e) = deliver_secret(secret.expose(), value("--secret-out").as_ref())
                    {
                        return fail(e);
                    }
                }
                Err(problem) => return fail(problem),
            }
        }
        Some("remove") => {
            let id = args.get(1).cloned().unwrap_or_default();
            match identity.delete_client(&id).await {
                Ok(true) => println!("application {id} removed"),
                Ok(false) => return fail(format!("no application with the id {id:?}")),
                Err(e) => return fail(e),
            }
        }
        _ => return fail(usage),
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

async fn keys(args: &[String], config: Config) -> ExitCode {
    if args.first().map(String::as_str) != Some("rotate") {
        return fail("usage: gatehouse keys rotate");
    }
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
