//! The Gatehouse server: the composition root. It reads the configuration, opens and migrates
//! the database, loads or creates the secret key, wires the identity core to a mailer and a
//! clock, and serves the HTTP edge (`http`).

pub mod backchannel;
pub mod config;
pub mod federation;
pub mod geo_install;
pub mod http;
pub mod sms;
pub mod smtp;
pub mod webhooks;

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use gatehouse_app::branding::Branding;
use gatehouse_core::clock::{Clock, SystemClock};
use gatehouse_core::hashing::PasswordHasher;
use gatehouse_core::identity::{Identity, IdentityConfig};
use gatehouse_core::mail::{DevelopmentOutbox, Mailer};
use gatehouse_core::secret::SecretKey;
use gatehouse_core::store::Store;

pub use config::Config;
pub use webhooks::spawn_webhooks;

pub use gatehouse_core::identity::admin::BRANDING_SETTING;

/// Shared state of every request.
#[derive(Clone)]
pub struct AppState {
    pub identity: Arc<Identity>,
    /// The protocol side of sign-in through other providers.
    pub federation: Arc<federation::Federation>,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub leptos_options: Option<leptos::config::LeptosOptions>,
}

impl AppState {
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The current branding (read from the database, so every instance sees a change).
    pub async fn branding(&self) -> Arc<Branding> {
        match self.identity.branding_record().await {
            Ok(Some(json)) => match serde_json::from_str::<Branding>(&json) {
                Ok(b) if b.validate().is_ok() => Arc::new(b),
                _ => Arc::new(Branding::default()),
            },
            Ok(None) => Arc::new(Branding::default()),
            Err(e) => {
                tracing::warn!(error = %e, "branding unavailable; using defaults");
                Arc::new(Branding::default())
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("cannot prepare the data folder {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error("the secret key is invalid: {0}")]
    SecretKey(String),
    #[error("database: {0}")]
    Store(String),
    #[error("email: {0}")]
    Mail(String),
    #[error("password hashing: {0}")]
    Hashing(String),
}

fn store_error(e: gatehouse_core::store::StoreError) -> StartupError {
    StartupError::Store(gatehouse_core::error_chain(&e))
}

/// Opens the database (creating the data folder for SQLite) and runs the migrations.
pub async fn open_store(config: &Config) -> Result<Store, StartupError> {
    let dir_err = |e: std::io::Error| StartupError::DataDir {
        path: config.data_dir.display().to_string(),
        reason: e.to_string(),
    };
    let sqlite_file = sqlite_path(&config.database_url);
    if sqlite_file.is_some() {
        create_private_dir(&config.data_dir).map_err(dir_err)?;
    }
    let store = Store::connect(&config.database_url, config.db_max_connections)
        .await
        .map_err(store_error)?;
    store.migrate().await.map_err(store_error)?;
    // The database holds every account: owner-only, like the folder around it. SQLite gives
    // its -wal and -shm files the permissions of the database file.
    if let Some(file) = sqlite_file {
        for suffix in ["", "-wal", "-shm"] {
            let path = std::path::PathBuf::from(format!("{file}{suffix}"));
            if path.exists() {
                set_mode(&path, 0o600).map_err(dir_err)?;
            }
        }
    }
    Ok(store)
}

/// The file of a `sqlite:` database URL (`sqlite://path?options` or `sqlite:path`).
fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

/// Creates the data folder owner-only (0700), and makes an existing one so.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    set_mode(dir, 0o700)
}

/// Sets a file's permission bits (nothing to do off Unix).
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// The secret key: from configuration, or generated once into the data folder (mode 0600)
/// and read from there on every later start.
pub fn load_secret_key(config: &Config) -> Result<SecretKey, StartupError> {
    let decode = |text: &str| -> Result<SecretKey, StartupError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| StartupError::SecretKey("not valid base64".into()))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| StartupError::SecretKey("must be 32 bytes".into()))?;
        Ok(SecretKey::from_bytes(arr))
    };
    if let Some(text) = &config.secret_key {
        return decode(text);
    }
    let path = config.data_dir.join("secret.key");
    let dir_err = |e: std::io::Error| StartupError::DataDir {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    if path.exists() {
        return decode(&std::fs::read_to_string(&path).map_err(dir_err)?);
    }
    create_private_dir(&config.data_dir).map_err(dir_err)?;
    let key = SecretKey::generate();
    write_private_file(&path, &STANDARD.encode(key.as_bytes())).map_err(dir_err)?;
    tracing::info!(path = %path.display(), "generated a new secret key");
    Ok(key)
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Builds the whole application state from a configuration.
pub async fn build_state(config: Config, clock: Arc<dyn Clock>) -> Result<AppState, StartupError> {
    let store = open_store(&config).await?;
    let key = load_secret_key(&config)?;
    let mailer: Arc<dyn Mailer> = match &config.smtp_url {
        Some(url) => {
            Arc::new(smtp::SmtpMailer::new(url, &config.smtp_from).map_err(StartupError::Mail)?)
        }
        None => Arc::new(DevelopmentOutbox),
    };
    if let Some(branding) = &config.branding {
        let json = serde_json::to_string(branding).map_err(|e| {
            StartupError::Config(config::ConfigError::Invalid {
                name: "branding",
                reason: e.to_string(),
            })
        })?;
        store
            .put_setting(BRANDING_SETTING, &json, clock.now_ms())
            .await
            .map_err(store_error)?;
    }
    let hasher =
        PasswordHasher::for_this_machine().map_err(|e| StartupError::Hashing(e.to_string()))?;
    let identity_config = IdentityConfig {
        session_idle_ms: config.session_idle_minutes * 60 * 1000,
        session_absolute_ms: config.session_absolute_hours * 60 * 60 * 1000,
        max_sessions_per_user: config.max_sessions_per_user,
        sign_in_log_ms: config.sign_in_log_days * 24 * 60 * 60 * 1000,
        sms_hourly_limit: config.sms_hourly_limit,
        public_url: config.public_origin.clone(),
    };
    let sms: Arc<dyn Mailer> = match &config.sms_gateway {
        Some(gateway) => Arc::new(sms::SmsGatewayClient::new(gateway.clone()).map_err(
            |reason| {
                StartupError::Config(config::ConfigError::Invalid {
                    name: "GATEHOUSE_SMS_GATEWAY_URL",
                    reason,
                })
            },
        )?),
        None => Arc::new(DevelopmentOutbox),
    };
    let identity = Identity::new(store, hasher, key, mailer, sms, identity_config)
        .map_err(|reason| {
            StartupError::Config(config::ConfigError::Invalid {
                name: "GATEHOUSE_PUBLIC_URL",
                reason,
            })
        })?
        .with_logout_delivery(Arc::new(backchannel::HttpLogoutDelivery))
        .with_geoip(open_data(&config.geoip_db, "GATEHOUSE_GEOIP_DB", |p| {
            let geo = gatehouse_core::geo::GeoIp::open(p)?;
            for s in geo.sources() {
                tracing::info!(file = %s.file, kind = %s.database_type, "GeoIP database opened");
            }
            Ok(geo)
        })?)
        .with_asn(open_data(&config.asn_db, "GATEHOUSE_ASN_DB", |p| {
            let asn = gatehouse_core::geo::AsnDb::open(p)?;
            for s in asn.sources() {
                tracing::info!(file = %s.file, kind = %s.database_type, "ASN database opened");
            }
            Ok(asn)
        })?)
        .with_breach_corpus(open_data(
            &config.breached_passwords,
            "GATEHOUSE_BREACHED_PASSWORDS",
            |p| {
                let corpus = gatehouse_core::breach::BreachCorpus::open(p)?;
                tracing::info!(corpus = %corpus.describe(), "breached-password corpus opened");
                Ok(corpus)
            },
        )?);
    identity
        .migrate_mfa_setting(clock.now_ms())
        .await
        .map_err(|e| StartupError::Store(e.to_string()))?;
    let federation = federation::Federation::new(
        &config.public_origin,
        std::time::Duration::from_secs(config.provider_timeout_seconds.unsigned_abs()),
    )
    .map_err(|reason| {
        StartupError::Config(config::ConfigError::Invalid {
            name: "GATEHOUSE_PROVIDER_TIMEOUT_SECONDS",
            reason,
        })
    })?;
    let leptos_options = site_options(&config);
    Ok(AppState {
        identity: Arc::new(identity),
        federation: Arc::new(federation),
        config: Arc::new(config),
        clock,
        leptos_options,
    })
}

/// Options for the hydration script, when the site's wasm has been built.
fn site_options(config: &Config) -> Option<leptos::config::LeptosOptions> {
    let pkg = config.site_root.join("pkg");
    let built = pkg.join("gatehouse.wasm").exists() || pkg.join("gatehouse_bg.wasm").exists();
    built.then(|| {
        leptos::config::LeptosOptions::builder()
            .output_name("gatehouse")
            .site_root(config.site_root.display().to_string())
            .site_pkg_dir("pkg")
            .build()
    })
}

/// How often the insights rollup reads new sign-in log rows (under its lease, on one
/// instance at a time).
pub const ROLLUP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// How often expired sessions, codes, counters and old messages are removed.
pub const HOUSEKEEPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Brings the insights counters up to date every [`ROLLUP_INTERVAL`]; removes expired rows
/// now and then every [`HOUSEKEEPING_INTERVAL`], so tables stay bounded, and runs Identity
/// Protection's offline detections. Safe to run on every instance at once:
/// each pass is a few idempotent deletes, and the detections run only on the instance holding
/// their lease in the database.
pub fn spawn_housekeeping(state: AppState) -> tokio::task::JoinHandle<()> {
    let instance = gatehouse_core::tokens::random_id();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(ROLLUP_INTERVAL);
        let every = (HOUSEKEEPING_INTERVAL.as_secs() / ROLLUP_INTERVAL.as_secs()).max(1);
        let mut tick: u64 = 0;
        loop {
            ticks.tick().await;
            match state.identity.run_rollups(&instance, state.now()).await {
                Ok(Some(run)) if run.rows > 0 => tracing::debug!(
                    rows = run.rows,
                    caught_up = run.caught_up,
                    "insights rollup"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "insights rollup failed"),
            }
            tick += 1;
            if !(tick - 1).is_multiple_of(every) {
                continue;
            }
            match state.identity.housekeeping(state.now()).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "housekeeping"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
            }
            match state
                .identity
                .run_offline_detections(&instance, state.now())
                .await
            {
                Ok(Some(run)) if run.detections > 0 => tracing::info!(
                    sources = run.sources,
                    suspicious = run.suspicious,
                    detections = run.detections,
                    "offline risk detections"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "offline risk detections failed"),
            }
            let branding = state.branding().await;
            let texts = http::toolkit::CatalogueEmails::of(&branding);
            match state
                .identity
                .run_risk_digest(&instance, &texts, state.now())
                .await
            {
                Ok(Some(n)) if n > 0 => tracing::info!(accounts = n, "risk digest sent"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "risk digest failed"),
            }
        }
    })
}

/// The real clock, for the binary.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// Opens a data file named by configuration, if there is one; a file that cannot be opened
/// stops start-up with the setting's name and the reason.
fn open_data<T>(
    path: &Option<std::path::PathBuf>,
    name: &'static str,
    open: impl FnOnce(&std::path::Path) -> Result<T, String>,
) -> Result<Option<Arc<T>>, StartupError> {
    match path {
        Some(path) => open(path)
            .map(|data| Some(Arc::new(data)))
            .map_err(|reason| StartupError::Config(config::ConfigError::Invalid { name, reason })),
        None => Ok(None),
    }
}
