//! Leaked-password lookups in the Pwned Passwords corpus: 100,000 lookups, half of passwords it
//! holds and half of others, after a warm-up. Uses the real corpus when `GATEHOUSE_BENCH_PWNED`
//! names one (the sorted file or the range folder); otherwise a generated sorted file of
//! 10,000,000 hashes and a folder of 4,096 range files of 800 lines each (the real files hold
//! about that many), kept under `target/bench-data` for the next run. Prints the time of one
//! lookup at the 50th and 99th percentile and the mean against the target of 100 µs.

#![allow(clippy::expect_used)]

use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use gatehouse_core::breach::BreachCorpus;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sha1::{Digest, Sha1};

const HASHES: u64 = 10_000_000;
const RANGE_FILES: usize = 4_096;
const RANGE_LINES: usize = 800;
const LOOKUPS: usize = 100_000;
const TARGET_US: f64 = 100.0;
const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// One lookup: a password (hashed by the corpus) or a hash taken from the corpus itself.
enum Query {
    Password(String),
    Hash(String),
}

impl Query {
    fn run(&self, corpus: &BreachCorpus) -> Option<u64> {
        match self {
            Query::Password(p) => corpus.times_seen(p),
            Query::Hash(h) => corpus.times_seen_hash(h),
        }
    }
}

fn main() {
    let mut rng = StdRng::seed_from_u64(7);
    if let Some(path) = std::env::var_os("GATEHOUSE_BENCH_PWNED") {
        let path = PathBuf::from(path);
        let corpus = BreachCorpus::open(&path).expect("the corpus opens");
        let present = sample_present(&path, LOOKUPS / 2, &mut rng)
            .into_iter()
            .map(Query::Hash);
        let absent = (0..LOOKUPS / 2).map(|j| Query::Password(format!("bench-absent-{j}")));
        let label = corpus.describe();
        measure(&label, &corpus, present.chain(absent).collect(), &mut rng);
        return;
    }

    let data = bench_data();
    std::fs::create_dir_all(&data).expect("target/bench-data");
    let sorted = sorted_file(&data.join("pwned-10m.txt"));
    let corpus = BreachCorpus::open(&sorted).expect("the generated file opens");
    let present = (0..LOOKUPS / 2)
        .map(|_| Query::Password(format!("bench-password-{}", rng.gen_range(0..HASHES))));
    let absent = (0..LOOKUPS / 2).map(|j| Query::Password(format!("bench-absent-{j}")));
    let label = format!("sorted file of {} hashes", thousands(HASHES));
    measure(&label, &corpus, present.chain(absent).collect(), &mut rng);

    let folder = range_folder(&data.join("pwned-ranges-4096"));
    let corpus = BreachCorpus::open(&folder).expect("the generated folder opens");
    let present = sample_present(&folder, LOOKUPS / 2, &mut rng)
        .into_iter()
        .map(Query::Hash);
    // Absent hashes of prefixes the folder holds: the whole file is read and scanned.
    let absent: Vec<Query> = (0..LOOKUPS / 2)
        .map(|_| {
            let prefix = rng.gen_range(0..RANGE_FILES) * 256;
            Query::Hash(format!("{prefix:05X}{}", random_hex(&mut rng, 35)))
        })
        .collect();
    let label = format!(
        "range folder of {} files × {RANGE_LINES} lines",
        thousands(RANGE_FILES as u64)
    );
    measure(&label, &corpus, present.chain(absent).collect(), &mut rng);
}

/// Times each query once after a warm-up pass over all of them, and prints the summary.
fn measure(label: &str, corpus: &BreachCorpus, mut queries: Vec<Query>, rng: &mut StdRng) {
    let (mut found_present, mut found_absent) = (0usize, 0usize);
    for (i, q) in queries.iter().enumerate() {
        if std::hint::black_box(q.run(corpus)).is_some() {
            if i < LOOKUPS / 2 {
                found_present += 1;
            } else {
                found_absent += 1;
            }
        }
    }
    queries.shuffle(rng);
    let mut times: Vec<f64> = queries
        .iter()
        .map(|q| {
            let start = Instant::now();
            std::hint::black_box(q.run(std::hint::black_box(corpus)));
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "leaked-password lookup, {label}: p50 {:.1} µs, p99 {:.1} µs, mean {:.1} µs \
         (target {TARGET_US:.0} µs: {:.2} of it)",
        p(0.50),
        p(0.99),
        mean,
        p(0.99) / TARGET_US
    );
    println!(
        "  {} lookups; found {} of {} held, {} of {} others",
        thousands(times.len() as u64),
        thousands(found_present as u64),
        thousands((LOOKUPS / 2) as u64),
        thousands(found_absent as u64),
        thousands((LOOKUPS / 2) as u64),
    );
}

/// `target/bench-data` of the workspace (or of `CARGO_TARGET_DIR`).
fn bench_data() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("bench-data")
}

/// How often `bench-password-{i}` was "seen": a spread of counts of 1 to 6 digits.
fn count_of(i: u64) -> u64 {
    1 + (i * 7_919) % 250_000
}

/// The generated sorted file, made once: SHA-1 of `bench-password-{i}` for `i` below
/// `HASHES`, sorted, each with its count. Reused when it has the size it must have.
fn sorted_file(path: &Path) -> PathBuf {
    let expected: u64 = (0..HASHES)
        .map(|i| 42 + count_of(i).to_string().len() as u64)
        .sum();
    if std::fs::metadata(path).is_ok_and(|m| m.len() == expected) {
        return path.to_path_buf();
    }
    let start = Instant::now();
    let mut digests: Vec<([u8; 20], u32)> = Vec::with_capacity(HASHES as usize);
    let mut password = String::new();
    for i in 0..HASHES {
        password.clear();
        std::fmt::Write::write_fmt(&mut password, format_args!("bench-password-{i}"))
            .expect("formatting");
        digests.push((Sha1::digest(password.as_bytes()).into(), i as u32));
    }
    digests.sort_unstable_by_key(|a| a.0);
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    let file = std::fs::File::create(&temp).expect("create the bench file");
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(64);
    for (digest, i) in &digests {
        line.clear();
        for b in digest {
            line.push(HEX[usize::from(b >> 4)]);
            line.push(HEX[usize::from(b & 15)]);
        }
        writeln!(line, ":{}", count_of(u64::from(*i))).expect("formatting");
        out.write_all(&line).expect("write the bench file");
    }
    out.flush().expect("write the bench file");
    drop(out);
    std::fs::rename(&temp, path).expect("rename the bench file");
    println!(
        "(generated {} in {:.1} s)",
        path.display(),
        start.elapsed().as_secs_f64()
    );
    path.to_path_buf()
}

/// The generated range folder, made once: files for 4,096 prefixes spread over the range, each
/// of random sorted suffixes. Reused when it holds all its files.
fn range_folder(dir: &Path) -> PathBuf {
    let complete = std::fs::read_dir(dir).is_ok_and(|d| d.count() == RANGE_FILES);
    if complete {
        return dir.to_path_buf();
    }
    let start = Instant::now();
    let temp = dir.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&temp);
    std::fs::create_dir_all(&temp).expect("create the bench folder");
    let mut rng = StdRng::seed_from_u64(11);
    for f in 0..RANGE_FILES {
        let mut suffixes: Vec<String> =
            (0..RANGE_LINES).map(|_| random_hex(&mut rng, 35)).collect();
        suffixes.sort_unstable();
        let mut text = String::with_capacity(RANGE_LINES * 44);
        for s in &suffixes {
            let count = rng.gen_range(1..100_000u32);
            std::fmt::Write::write_fmt(&mut text, format_args!("{s}:{count}\r\n"))
                .expect("formatting");
        }
        std::fs::write(temp.join(format!("{:05X}.txt", f * 256)), text)
            .expect("write a range file");
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&temp, dir).expect("rename the bench folder");
    println!(
        "(generated {} in {:.1} s)",
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    dir.to_path_buf()
}

fn random_hex(rng: &mut StdRng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(HEX[rng.gen_range(0..16)]))
        .collect()
}

/// `n` hashes the corpus holds, read from random places of it: lines of random range files,
/// or the line after a random offset of the sorted file.
fn sample_present(path: &Path, n: usize, rng: &mut StdRng) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    if path.is_dir() {
        let files: Vec<PathBuf> = std::fs::read_dir(path)
            .expect("read the corpus folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| s.len() == 5 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            })
            .collect();
        while out.len() < n {
            let file = &files[rng.gen_range(0..files.len())];
            let text = std::fs::read_to_string(file).expect("read a range file");
            let lines: Vec<&str> = text.lines().filter(|l| l.len() > 36).collect();
            if lines.is_empty() {
                continue;
            }
            let line = lines[rng.gen_range(0..lines.len())];
            let prefix = file
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("a range file name");
            out.push(format!("{prefix}{}", &line[..35]));
        }
    } else {
        let mut file = std::fs::File::open(path).expect("open the corpus file");
        let len = file.metadata().expect("the corpus file's size").len();
        let mut buf = [0u8; 256];
        while out.len() < n {
            file.seek(SeekFrom::Start(rng.gen_range(0..len)))
                .expect("seek in the corpus file");
            let read = file.read(&mut buf).expect("read the corpus file");
            let chunk = &buf[..read];
            let Some(nl) = chunk.iter().position(|&b| b == b'\n') else {
                continue;
            };
            let rest = &chunk[nl + 1..];
            if rest.len() > 40 && rest[40] == b':' {
                if let Ok(hash) = std::str::from_utf8(&rest[..40]) {
                    out.push(hash.to_string());
                }
            }
        }
    }
    out
}

/// `10000000` as `10,000,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
