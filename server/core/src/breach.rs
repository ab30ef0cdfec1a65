//! Breached passwords, checked offline against the Have I Been Pwned "Pwned Passwords" corpus:
//! the SHA-1 of every password seen in known breaches, with how often it was seen.
//!
//! Two layouts are read, chosen by what the path is:
//! - a folder of range files, as the official `haveibeenpwned-downloader` tool writes them: one
//!   file per 5-hex-digit prefix of the hash (`5BAA6` or `5BAA6.txt`, either case), each line
//!   `SUFFIX:COUNT` with the other 35 digits. A lookup reads the one file of its prefix.
//! - one file of whole hashes sorted by hash, each line `HASH:COUNT` (the "ordered by hash"
//!   download, `pwned-passwords-sha1-ordered-by-hash-v8.txt`, about a billion lines). It is
//!   mapped into memory, never read whole, and binary-searched by byte offset, so a lookup
//!   touches a few dozen pages.
//!
//! Lookups never leave the machine: nothing is sent to the Have I Been Pwned service.
//!
//! Lines may end in `\n` or `\r\n` and hex digits may be in either case. A malformed line (bad
//! hex, no count) matches nothing; a count that does not parse counts as one.

use std::cmp::Ordering;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use sha1::{Digest, Sha1};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// An opened corpus. It holds the mapped file or the folder's path, never the data in memory.
pub struct BreachCorpus {
    path: PathBuf,
    layout: Layout,
}

enum Layout {
    Ranges {
        /// The name forms the folder's files use, tried in turn for each prefix.
        forms: Vec<NameForm>,
        files: usize,
    },
    Sorted {
        /// `None` for an empty file, which cannot be mapped.
        map: Option<Mmap>,
        size: u64,
    },
}

/// How a range file is named: the prefix's case and the extension (`""`, `".txt"`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
struct NameForm {
    lower: bool,
    extension: String,
}

impl std::fmt::Debug for BreachCorpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let layout = match self.layout {
            Layout::Ranges { .. } => "range folder",
            Layout::Sorted { .. } => "sorted file",
        };
        f.debug_struct("BreachCorpus")
            .field("layout", &layout)
            .field("path", &self.path)
            .finish()
    }
}

/// Upper-case hex of the SHA-1 of `password`'s UTF-8 bytes, as the corpus writes it.
pub fn sha1_hex(password: &str) -> String {
    hex_upper(&Sha1::digest(password.as_bytes()))
        .iter()
        .map(|&b| char::from(b))
        .collect()
}

fn hex_upper(digest: &[u8]) -> [u8; 40] {
    let mut out = [b'0'; 40];
    for (pair, b) in out.chunks_exact_mut(2).zip(digest) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 15)];
    }
    out
}

impl BreachCorpus {
    /// Opens a folder of range files or one file sorted by hash. A folder without a range file,
    /// or a file whose first line is not `HASH:COUNT`, is refused: it is not a corpus.
    pub fn open(path: &Path) -> Result<BreachCorpus, String> {
        let name = path.display();
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot open the breached-password corpus {name}: {e}"))?;
        let layout = if meta.is_dir() {
            open_ranges(path)?
        } else {
            open_sorted(path)?
        };
        Ok(BreachCorpus {
            path: path.to_path_buf(),
            layout,
        })
    }

    /// How often `password` was seen in breaches; `None` when the corpus does not hold it.
    pub fn times_seen(&self, password: &str) -> Option<u64> {
        self.lookup(&hex_upper(&Sha1::digest(password.as_bytes())))
    }

    /// How often the password of this SHA-1 (40 hex digits, either case) was seen; `None` when
    /// absent or not a SHA-1.
    pub fn times_seen_hash(&self, sha1_hex: &str) -> Option<u64> {
        let bytes = sha1_hex.trim().as_bytes();
        if bytes.len() != 40 || !bytes.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let mut want = [0u8; 40];
        for (w, b) in want.iter_mut().zip(bytes) {
            *w = b.to_ascii_uppercase();
        }
        self.lookup(&want)
    }

    /// The layout, path and size, for the console and the logs: "sorted file pwned.txt
    /// (1.2 GB)", "range folder pwned (1,048,576 files)".
    pub fn describe(&self) -> String {
        let name = self.path.display();
        match &self.layout {
            Layout::Ranges { files, .. } => {
                let unit = if *files == 1 { "file" } else { "files" };
                format!("range folder {name} ({} {unit})", thousands(*files as u64))
            }
            Layout::Sorted { size: 0, .. } => format!("sorted file {name} (empty)"),
            Layout::Sorted { size, .. } => format!("sorted file {name} ({})", bytes(*size)),
        }
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lookup(&self, want: &[u8; 40]) -> Option<u64> {
        match &self.layout {
            Layout::Ranges { forms, .. } => self.lookup_range(forms, want),
            Layout::Sorted { map: None, .. } => None,
            Layout::Sorted { map: Some(map), .. } => search_sorted(map, want),
        }
    }

    /// Reads the one range file of the prefix (a missing one holds nothing).
    fn lookup_range(&self, forms: &[NameForm], want: &[u8; 40]) -> Option<u64> {
        let (prefix, suffix) = want.split_at(5);
        let prefix = std::str::from_utf8(prefix).ok()?;
        for form in forms {
            let stem = if form.lower {
                prefix.to_ascii_lowercase()
            } else {
                prefix.to_string()
            };
            let file = self.path.join(format!("{stem}{}", form.extension));
            match std::fs::read(&file) {
                Ok(text) => {
                    return text
                        .split(|&b| b == b'\n')
                        .find_map(|line| count_if(line, suffix));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    // Fails open (a breach check is advice, not a gate), but loudly.
                    tracing::warn!(file = %file.display(), error = %e, "cannot read a range file");
                    return None;
                }
            }
        }
        None
    }
}

/// Counts the folder's range files and notes how they are named.
fn open_ranges(dir: &Path) -> Result<Layout, String> {
    let name = dir.display();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the breached-password folder {name}: {e}"))?;
    let mut forms: Vec<NameForm> = Vec::new();
    let mut extensions: Vec<String> = Vec::new();
    let mut files = 0usize;
    for entry in entries.flatten() {
        let is_file = entry
            .file_type()
            .is_ok_and(|t| t.is_file() || t.is_symlink());
        let file_name = entry.file_name();
        let Some((lower, extension)) = file_name.to_str().and_then(range_name) else {
            continue;
        };
        if !is_file {
            continue;
        }
        files += 1;
        if !extensions.contains(&extension) {
            extensions.push(extension.clone());
        }
        if let Some(lower) = lower {
            let form = NameForm { lower, extension };
            if !forms.contains(&form) {
                forms.push(form);
            }
        }
    }
    if files == 0 {
        return Err(format!(
            "the folder {name} holds no Pwned Passwords range file (named like 5BAA6 or 5BAA6.txt)"
        ));
    }
    // Names of digits only say nothing of case: their extensions are tried in upper case.
    for extension in extensions {
        if !forms.iter().any(|f| f.extension == extension) {
            forms.push(NameForm {
                lower: false,
                extension,
            });
        }
    }
    Ok(Layout::Ranges { forms, files })
}

/// Whether `name` is a range file's (`ABCDE`, `abcde`, `ABCDE.txt`, any case of `.txt`): the
/// case of its letters (`None` when all digits) and its extension as written.
fn range_name(name: &str) -> Option<(Option<bool>, String)> {
    let (stem, extension) = match name.len() {
        5 => (name, ""),
        9 if name.is_char_boundary(5) && name[5..].eq_ignore_ascii_case(".txt") => name.split_at(5),
        _ => return None,
    };
    if !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let upper = stem.bytes().any(|b| b.is_ascii_uppercase());
    let lower = stem.bytes().any(|b| b.is_ascii_lowercase());
    let case = match (upper, lower) {
        (true, true) => return None,
        (true, false) => Some(false),
        (false, true) => Some(true),
        (false, false) => None,
    };
    Some((case, extension.to_string()))
}

/// Maps the sorted file, after checking its first line is `HASH:COUNT`.
fn open_sorted(path: &Path) -> Result<Layout, String> {
    let name = path.display();
    let file = File::open(path)
        .map_err(|e| format!("cannot open the breached-password corpus {name}: {e}"))?;
    let size = file
        .metadata()
        .map_err(|e| format!("cannot read {name}: {e}"))?
        .len();
    if size == 0 {
        return Ok(Layout::Sorted { map: None, size });
    }
    let map = map(&file, path)?;
    #[cfg(unix)]
    {
        // Binary search jumps about: reading ahead would only fill the page cache.
        let _ = map.advise(memmap2::Advice::Random);
    }
    let first = map.split(|&b| b == b'\n').next().unwrap_or_default();
    if !is_hash_line(first) {
        return Err(format!(
            "{name} is not a Pwned Passwords file ordered by hash: its first line is not \
             HASH:COUNT (40 hex digits, a colon, a count)"
        ));
    }
    Ok(Layout::Sorted {
        map: Some(map),
        size,
    })
}

/// Whether a line is `HASH:COUNT`: 40 hex digits, a colon and a decimal count.
fn is_hash_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.len() > 41
        && line[..40].iter().all(u8::is_ascii_hexdigit)
        && line[40] == b':'
        && line[41..].iter().all(u8::is_ascii_digit)
}

/// A line's hash part (before the colon) and count part (`None` without a colon), without the
/// line's `\r`.
fn split_line(line: &[u8]) -> (&[u8], Option<&[u8]>) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.iter().position(|&b| b == b':') {
        Some(colon) => (&line[..colon], Some(&line[colon + 1..])),
        None => (line, None),
    }
}

/// The count of a line whose hash part is `want` (either case); `None` when it is another
/// hash or has no count. A count that does not parse is one.
fn count_if(line: &[u8], want: &[u8]) -> Option<u64> {
    // The hash part is `want` exactly when the line starts with it and a colon follows: no
    // need to look for the colon in every line of a range file.
    let (key, rest) = (line.get(..want.len())?, line.get(want.len()..)?);
    let count = rest.strip_prefix(b":")?;
    if !key.eq_ignore_ascii_case(want) {
        return None;
    }
    parse_count(count)
}

fn parse_count(count: &[u8]) -> Option<u64> {
    let count = count.trim_ascii();
    if count.is_empty() {
        return None;
    }
    Some(
        std::str::from_utf8(count)
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
    )
}

/// Orders a line's hash part against `want` (upper case), ignoring the line's case.
fn compare_key(key: &[u8], want: &[u8]) -> Ordering {
    key.iter()
        .map(u8::to_ascii_uppercase)
        .cmp(want.iter().copied())
}

/// Binary search by byte offset over lines sorted by hash. `lo` is always a line start, every
/// line starting before `lo` is less than `want` and every line starting at or after `hi` is
/// greater; the middle of `lo..hi` moves on to the next line start.
fn search_sorted(data: &[u8], want: &[u8; 40]) -> Option<u64> {
    let (mut lo, mut hi) = (0usize, data.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = line_start_from(data, mid);
        if start >= hi {
            // No line starts in `mid..hi`: the lines left all start in `lo..mid`.
            hi = mid;
            continue;
        }
        let end = data
            .get(start..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            .map_or(data.len(), |p| start + p);
        let line = data.get(start..end).unwrap_or_default();
        let (key, count) = split_line(line);
        match compare_key(key, want) {
            Ordering::Equal => return count.and_then(parse_count),
            Ordering::Less => lo = (end + 1).min(data.len()),
            Ordering::Greater => hi = start,
        }
    }
    None
}

/// The first line start at or after `at`: `at` itself after a newline (or at 0), else the byte
/// after the next newline, else the end.
fn line_start_from(data: &[u8], at: usize) -> usize {
    if at == 0 || data.get(at - 1) == Some(&b'\n') {
        return at;
    }
    data.get(at..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        .map_or(data.len(), |p| at + p + 1)
}

/// Maps the corpus file into memory.
#[allow(unsafe_code)]
fn map(file: &File, path: &Path) -> Result<Mmap, String> {
    // SAFETY: the mapping is read-only and lives as long as the corpus. The file must not be
    // changed in place while Gatehouse runs; a new corpus is put in place by renaming it over
    // the old one, which leaves the mapped (old) file intact.
    unsafe { Mmap::map(file) }.map_err(|e| format!("cannot map {}: {e}", path.display()))
}

/// `1048576` as `1,048,576`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A size in decimal units, one decimal: `1.2 GB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

    const PASSWORD_SHA1: &str = "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8";

    /// A fresh folder under the system's temp dir, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "gatehouse-breach-{name}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, AtomicOrdering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Lines `HASH:COUNT` of these passwords, sorted by hash.
    fn sorted_lines(passwords: &[(&str, u64)]) -> Vec<String> {
        let mut lines: Vec<String> = passwords
            .iter()
            .map(|(p, n)| format!("{}:{n}", sha1_hex(p)))
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn sha1_is_upper_case_hex() {
        assert_eq!(sha1_hex("password"), PASSWORD_SHA1);
        assert_eq!(sha1_hex(""), "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709");
    }

    #[test]
    fn a_sorted_file_finds_every_line_with_its_count() {
        let scratch = Scratch::new("sorted");
        let words: Vec<(String, u64)> = (0..50).map(|i| (format!("word-{i}"), i + 1)).collect();
        let mut all: Vec<(&str, u64)> = words.iter().map(|(w, n)| (w.as_str(), *n)).collect();
        all.push(("password", 9_545_824));
        let lines = sorted_lines(&all);
        let file = scratch.write("pwned.txt", &(lines.join("\n") + "\n"));
        let corpus = BreachCorpus::open(&file).unwrap();
        assert_eq!(corpus.times_seen("password"), Some(9_545_824));
        assert_eq!(corpus.times_seen_hash(PASSWORD_SHA1), Some(9_545_824));
        assert_eq!(
            corpus.times_seen_hash(&PASSWORD_SHA1.to_lowercase()),
            Some(9_545_824)
        );
        for (w, n) in &words {
            assert_eq!(corpus.times_seen(w), Some(*n), "{w}");
        }
        assert_eq!(corpus.times_seen("correct horse battery staple"), None);
        assert_eq!(corpus.times_seen_hash("not hex"), None);
        assert_eq!(corpus.times_seen_hash(&PASSWORD_SHA1[..39]), None);
        assert!(
            corpus.describe().starts_with("sorted file "),
            "{}",
            corpus.describe()
        );
    }

    #[test]
    fn the_first_and_last_lines_are_found_with_or_without_a_final_newline() {
        let scratch = Scratch::new("ends");
        let all: Vec<(String, u64)> = (0..20).map(|i| (format!("edge-{i}"), i + 10)).collect();
        let all: Vec<(&str, u64)> = all.iter().map(|(w, n)| (w.as_str(), *n)).collect();
        let lines = sorted_lines(&all);
        let first = lines.first().unwrap().clone();
        let last = lines.last().unwrap().clone();
        let count = |line: &str| line[41..].parse::<u64>().unwrap();
        for (name, text) in [
            ("newline.txt", lines.join("\n") + "\n"),
            ("no-newline.txt", lines.join("\n")),
        ] {
            let corpus = BreachCorpus::open(&scratch.write(name, &text)).unwrap();
            assert_eq!(
                corpus.times_seen_hash(&first[..40]),
                Some(count(&first)),
                "{name}"
            );
            assert_eq!(
                corpus.times_seen_hash(&last[..40]),
                Some(count(&last)),
                "{name}"
            );
            // Before the first and after the last.
            assert_eq!(corpus.times_seen_hash(&"0".repeat(40)), None);
            assert_eq!(corpus.times_seen_hash(&"F".repeat(40)), None);
        }
        let one = scratch.write("one.txt", &format!("{PASSWORD_SHA1}:3"));
        assert_eq!(
            BreachCorpus::open(&one).unwrap().times_seen("password"),
            Some(3)
        );
    }

    #[test]
    fn crlf_endings_and_lower_case_hex_are_read() {
        let scratch = Scratch::new("crlf");
        let mut lines: Vec<String> = [("alpha", 3), ("beta", 5), ("password", 7)]
            .iter()
            .map(|(p, n)| format!("{}:{n}", sha1_hex(p).to_lowercase()))
            .collect();
        lines.sort_by_key(|l| l.to_ascii_uppercase());
        let file = scratch.write("pwned.txt", &(lines.join("\r\n") + "\r\n"));
        let corpus = BreachCorpus::open(&file).unwrap();
        assert_eq!(corpus.times_seen("alpha"), Some(3));
        assert_eq!(corpus.times_seen("beta"), Some(5));
        assert_eq!(corpus.times_seen("password"), Some(7));
        assert_eq!(corpus.times_seen("gamma"), None);
    }

    #[test]
    fn an_unreadable_count_is_one_and_a_missing_one_matches_nothing() {
        let mut lines = vec![
            format!("{}:12", sha1_hex("alpha")),
            format!("{}:many", sha1_hex("beta")),
            format!("{}:", sha1_hex("gamma")),
            sha1_hex("delta"),
        ];
        lines.sort();
        // The lowest hash first, so the sorted file opens whatever the others' order.
        lines.insert(0, format!("{}:1", "0".repeat(40)));
        let scratch = Scratch::new("counts");
        let sorted = scratch.write("pwned.txt", &(lines.join("\n") + "\n"));
        let folder = Scratch::new("counts-ranges");
        for line in &lines {
            folder.write(&line[..5], &format!("{}\n", &line[5..]));
        }
        for path in [sorted, folder.0.clone()] {
            let corpus = BreachCorpus::open(&path).unwrap();
            assert_eq!(corpus.times_seen("alpha"), Some(12), "{corpus:?}");
            assert_eq!(
                corpus.times_seen("beta"),
                Some(1),
                "an unreadable count is one"
            );
            assert_eq!(corpus.times_seen("gamma"), None, "no count");
            assert_eq!(corpus.times_seen("delta"), None, "no colon");
        }
    }

    #[test]
    fn a_range_folder_reads_the_one_file_of_the_prefix() {
        let scratch = Scratch::new("ranges");
        let (prefix, suffix) = PASSWORD_SHA1.split_at(5);
        scratch.write(
            &format!("{prefix}.txt"),
            &format!(
                "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\nnot a line\r\nZZZZ:3\r\n:\r\n\r\n\
                 {suffix}:9545824\r\n1E4C9B93F3F0682250B6CF8331B7EE68FD9:2\r\n"
            ),
        );
        let other = sha1_hex("letmein");
        scratch.write(&other[..5], &format!("{}:42", &other[5..]));
        scratch.write("README.md", "not a range file");
        let corpus = BreachCorpus::open(&scratch.0).unwrap();
        assert_eq!(corpus.times_seen("password"), Some(9_545_824));
        assert_eq!(corpus.times_seen("letmein"), Some(42));
        assert_eq!(corpus.times_seen("correct horse battery staple"), None);
        assert!(
            corpus.describe().contains("(2 files)"),
            "{}",
            corpus.describe()
        );
    }

    #[test]
    fn range_files_in_lower_case_are_read() {
        let scratch = Scratch::new("lower-ranges");
        let hash = sha1_hex("password").to_lowercase();
        scratch.write(
            &format!("{}.TXT", &hash[..5]),
            &format!("{}:5\n", &hash[5..]),
        );
        let corpus = BreachCorpus::open(&scratch.0).unwrap();
        assert_eq!(corpus.times_seen("password"), Some(5));
        assert_eq!(corpus.times_seen("letmein"), None);
    }

    #[test]
    fn malformed_lines_never_panic() {
        let scratch = Scratch::new("malformed");
        let good = format!("{PASSWORD_SHA1}:9");
        let junk = [
            "",
            ":",
            "\r",
            "::::",
            "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ:1",
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8",
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:",
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD80:1",
            "é€\u{0}:1",
        ];
        for (i, j) in junk.iter().enumerate() {
            let text = format!("{good}\n{j}\n{j}\r\n{good}\n{j}");
            let corpus = BreachCorpus::open(&scratch.write(&format!("j{i}.txt"), &text)).unwrap();
            for query in ["password", "letmein", "", "é"] {
                let _ = corpus.times_seen(query);
            }
            for hash in ["0".repeat(40), "F".repeat(40), "5BAA6".repeat(8)] {
                let _ = corpus.times_seen_hash(&hash);
            }
            let folder = Scratch::new("malformed-ranges");
            folder.write("5BAA6", &format!("{j}\n{}:9\r\n{j}", &PASSWORD_SHA1[5..]));
            let corpus = BreachCorpus::open(&folder.0).unwrap();
            assert_eq!(corpus.times_seen("password"), Some(9), "{j:?}");
            assert_eq!(corpus.times_seen_hash(&"5BAA6".repeat(8)), None);
        }
    }

    #[test]
    fn an_empty_file_opens_and_holds_nothing() {
        let scratch = Scratch::new("empty");
        let corpus = BreachCorpus::open(&scratch.write("empty.txt", "")).unwrap();
        assert_eq!(corpus.times_seen("password"), None);
        assert_eq!(corpus.times_seen_hash(PASSWORD_SHA1), None);
        assert!(corpus.describe().contains("empty"), "{}", corpus.describe());
    }

    #[test]
    fn what_is_not_a_corpus_is_refused_by_name() {
        let scratch = Scratch::new("refused");
        let missing = scratch.0.join("missing.txt");
        let err = BreachCorpus::open(&missing).unwrap_err();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        scratch.write("notes.txt", "hello\n");
        scratch.write("ABCDEF", "too long a prefix\n");
        let err = BreachCorpus::open(&scratch.0).unwrap_err();
        assert!(err.contains(&scratch.0.display().to_string()), "{err}");
        assert!(err.contains("no Pwned Passwords range file"), "{err}");
        let junk = scratch.write("junk.txt", "hello world\n");
        let err = BreachCorpus::open(&junk).unwrap_err();
        assert!(
            err.contains("junk.txt") && err.contains("HASH:COUNT"),
            "{err}"
        );
        // A range file is not a whole-hash file.
        let range = scratch.write("5BAA6", "1E4C9B93F3F0682250B6CF8331B7EE68FD8:9545824\n");
        assert!(BreachCorpus::open(&range)
            .unwrap_err()
            .contains("HASH:COUNT"));
    }

    #[test]
    fn debug_shows_the_layout_and_path_and_no_data() {
        let scratch = Scratch::new("debug");
        let file = scratch.write("pwned.txt", &format!("{PASSWORD_SHA1}:9545824\n"));
        let sorted = format!("{:?}", BreachCorpus::open(&file).unwrap());
        assert!(
            sorted.contains("sorted file") && sorted.contains("pwned.txt"),
            "{sorted}"
        );
        assert!(
            !sorted.contains("5BAA6") && !sorted.contains("9545824"),
            "{sorted}"
        );
        let folder = Scratch::new("debug-ranges");
        folder.write("5BAA6", "1E4C9B93F3F0682250B6CF8331B7EE68FD8:9545824\n");
        let ranges = format!("{:?}", BreachCorpus::open(&folder.0).unwrap());
        assert!(ranges.contains("range folder"), "{ranges}");
        assert!(
            !ranges.contains("1E4C9") && !ranges.contains("9545824"),
            "{ranges}"
        );
    }

    #[test]
    fn sizes_and_counts_read_plainly() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_048_576), "1,048,576");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1_234_567_890), "1.2 GB");
        assert_eq!(bytes(38_000_000_000), "38.0 GB");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn every_password_of_a_sorted_file_is_found_and_no_other(
            words in proptest::collection::btree_map(".{0,16}", 1u64..1_000_000, 1..300),
            others in proptest::collection::vec(".{0,16}", 1..50),
            crlf in proptest::bool::ANY,
        ) {
            let scratch = Scratch::new("prop");
            let all: Vec<(&str, u64)> = words.iter().map(|(w, n)| (w.as_str(), *n)).collect();
            let end = if crlf { "\r\n" } else { "\n" };
            let file = scratch.write("pwned.txt", &sorted_lines(&all).join(end));
            let corpus = BreachCorpus::open(&file).unwrap();
            for (w, n) in &words {
                proptest::prop_assert_eq!(corpus.times_seen(w), Some(*n));
            }
            for o in others.iter().filter(|o| !words.contains_key(*o)) {
                proptest::prop_assert_eq!(corpus.times_seen(o), None);
            }
        }
    }
}
