//! A small writer of MaxMind DB files (<https://maxmind.github.io/MaxMind-DB/>) for tests: an
//! IPv6 search tree with 24-bit records, the 16-byte separator, the data section, then the
//! metadata marker and map. IPv4 networks go under `::/96`, where readers look for them.

use std::path::Path;

use ipnet::IpNet;

/// The `build_epoch` every written database carries.
pub const BUILD_EPOCH: u64 = 1_700_000_000;

/// What a database says of one network.
pub struct MmdbRecord {
    pub country: &'static str,
    pub city: Option<&'static str>,
    pub latitude: f64,
    pub longitude: f64,
    pub accuracy_km: Option<u16>,
}

/// How records are laid out.
pub enum Layout {
    /// MaxMind GeoIP2 / GeoLite2: `country.iso_code`, `city.names.en`, `location.*`.
    GeoIp2,
    /// db-ip lite as ip-location-db publishes it: `country_code`, `city`, `latitude`, `longitude`.
    Flat,
}

/// A value of the data section.
enum Value {
    Str(String),
    Double(f64),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'static str, Value)>),
    Array(Vec<Value>),
}

fn text(s: &str) -> Value {
    Value::Str(s.to_string())
}

// Type numbers of the spec; those above 7 are "extended" (a zero type, then `type - 7`).
const STRING: u8 = 2;
const DOUBLE: u8 = 3;
const UINT16: u8 = 5;
const UINT32: u8 = 6;
const MAP: u8 = 7;
const UINT64: u8 = 9;
const ARRAY: u8 = 11;

/// A control byte (and the extended-type and size bytes that follow it).
fn control(out: &mut Vec<u8>, type_num: u8, size: usize) {
    let (low, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => {
            assert!(size < 65_821 + (1 << 24), "a value of {size} is too long");
            (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec())
        }
    };
    if type_num <= 7 {
        out.push(type_num << 5 | low);
    } else {
        out.push(low);
        out.push(type_num - 7);
    }
    out.extend(extra);
}

/// An unsigned integer in as few big-endian bytes as it needs (zero takes none).
fn uint(out: &mut Vec<u8>, type_num: u8, be: &[u8]) {
    let skip = be.iter().take_while(|b| **b == 0).count();
    control(out, type_num, be.len() - skip);
    out.extend(&be[skip..]);
}

fn encode(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Str(s) => {
            control(out, STRING, s.len());
            out.extend(s.as_bytes());
        }
        Value::Double(d) => {
            control(out, DOUBLE, 8);
            out.extend(d.to_be_bytes());
        }
        Value::U16(n) => uint(out, UINT16, &n.to_be_bytes()),
        Value::U32(n) => uint(out, UINT32, &n.to_be_bytes()),
        Value::U64(n) => uint(out, UINT64, &n.to_be_bytes()),
        Value::Map(pairs) => {
            control(out, MAP, pairs.len());
            for (key, value) in pairs {
                encode(out, &text(key));
                encode(out, value);
            }
        }
        Value::Array(items) => {
            control(out, ARRAY, items.len());
            items.iter().for_each(|v| encode(out, v));
        }
    }
}

fn record_value(layout: &Layout, r: &MmdbRecord) -> Value {
    let mut pairs = Vec::new();
    match layout {
        Layout::GeoIp2 => {
            pairs.push(("country", Value::Map(vec![("iso_code", text(r.country))])));
            if let Some(city) = r.city {
                let names = Value::Map(vec![("en", text(city))]);
                pairs.push(("city", Value::Map(vec![("names", names)])));
            }
            let mut location = vec![
                ("latitude", Value::Double(r.latitude)),
                ("longitude", Value::Double(r.longitude)),
            ];
            if let Some(km) = r.accuracy_km {
                location.push(("accuracy_radius", Value::U16(km)));
            }
            pairs.push(("location", Value::Map(location)));
        }
        Layout::Flat => {
            pairs.push(("country_code", text(r.country)));
            if let Some(city) = r.city {
                pairs.push(("city", text(city)));
            }
            pairs.push(("latitude", Value::Double(r.latitude)));
            pairs.push(("longitude", Value::Double(r.longitude)));
        }
    }
    Value::Map(pairs)
}

/// Where one record of the tree leads.
#[derive(Clone, Copy)]
enum Child {
    Empty,
    Node(usize),
    /// The record of `networks[i]`.
    Data(usize),
}

/// Writes an IPv6-tree database (ip_version 6, record size 24) holding these networks; IPv4
/// networks are placed under ::/96 as MaxMind does, so IPv4 lookups work. Networks must not
/// overlap.
pub fn write_mmdb(
    path: &Path,
    layout: Layout,
    database_type: &str,
    networks: &[(IpNet, MmdbRecord)],
) {
    // The tree: node 0 is the root; bit `depth` of the address picks the left or right record.
    let mut nodes: Vec<[Child; 2]> = vec![[Child::Empty; 2]];
    for (i, (net, _)) in networks.iter().enumerate() {
        let (bits, len) = match net {
            IpNet::V4(n) => (u128::from(u32::from(n.network())), 96 + n.prefix_len()),
            IpNet::V6(n) => (u128::from(n.network()), n.prefix_len()),
        };
        assert!(len > 0, "{net}: the root of the tree must be a node");
        let mut node = 0;
        for depth in 0..len {
            let bit = ((bits >> (127 - depth)) & 1) as usize;
            let last = depth + 1 == len;
            match (nodes[node][bit], last) {
                (Child::Empty, true) => nodes[node][bit] = Child::Data(i),
                (Child::Empty, false) => {
                    nodes.push([Child::Empty; 2]);
                    nodes[node][bit] = Child::Node(nodes.len() - 1);
                    node = nodes.len() - 1;
                }
                (Child::Node(next), false) => node = next,
                _ => panic!("{net} overlaps another network"),
            }
        }
    }
    let node_count = nodes.len();

    let mut data = Vec::new();
    let mut offsets = Vec::new();
    for (_, record) in networks {
        offsets.push(data.len());
        encode(&mut data, &record_value(&layout, record));
    }

    let mut out = Vec::new();
    for node in &nodes {
        for child in node {
            let value = match *child {
                Child::Empty => node_count,
                Child::Node(n) => n,
                Child::Data(i) => node_count + 16 + offsets[i],
            };
            assert!(
                value < 1 << 24,
                "the database is too big for 24-bit records"
            );
            out.extend(&(value as u32).to_be_bytes()[1..]);
        }
    }
    out.extend([0u8; 16]);
    out.extend(&data);
    out.extend(b"\xAB\xCD\xEFMaxMind.com");
    let description = format!("Gatehouse test database ({database_type})");
    let metadata = Value::Map(vec![
        ("node_count", Value::U32(node_count as u32)),
        ("record_size", Value::U16(24)),
        ("ip_version", Value::U16(6)),
        ("database_type", text(database_type)),
        ("languages", Value::Array(vec![text("en")])),
        ("binary_format_major_version", Value::U16(2)),
        ("binary_format_minor_version", Value::U16(0)),
        ("build_epoch", Value::U64(BUILD_EPOCH)),
        (
            "description",
            Value::Map(vec![("en", Value::Str(description))]),
        ),
    ]);
    encode(&mut out, &metadata);
    std::fs::write(path, out).unwrap();
}
