//! Usage and insights: the rollups of the sign-in log and the periods the dashboards show.
//!
//! A job folds new sign-in log rows into counters (see [`fold`]), each kept for four spans
//! of time in UTC: quarter hours, hours, days and blocks of sixteen days. Every time zone in
//! use today has an offset that is a whole number of quarter hours, so any local day or month
//! is an exact union of such buckets ([`cover`]): blocks and days in the middle, hours and
//! quarter hours at its edges. So
//! the dashboards count exactly in the admin's own time zone, across daylight-saving changes,
//! without keeping rollups per zone.
//!
//! Everything here is pure but [`roll_up`] and [`read`], which drive the store; the console
//! and the API reach them through [`crate::identity::Identity`].

use std::collections::BTreeMap;

use jiff::civil::Date;
pub use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use cardinality_estimator::CardinalityEstimator;
use sha2::{Digest, Sha256};

use crate::store::{
    CountDelta, CountRow, InsightEvent, RollupWrite, SignInLogEntry, SketchRow, Store, StoreResult,
    UserSpan, Watermark, EVENT_ROLLUP, SIGN_IN_ROLLUP,
};

/// The lengths of the rollup spans.
pub const QUARTER_MS: i64 = 15 * 60 * 1000;
pub const HOUR_MS: i64 = 60 * 60 * 1000;
pub const DAY_MS: i64 = 24 * HOUR_MS;
pub const BLOCK_MS: i64 = 16 * DAY_MS;

/// One span of rollup buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Span {
    Quarter,
    Hour,
    Day,
    /// Sixteen days from a multiple of sixteen days since 1970: the middle of a long range
    /// (a quarter, a year) reads a few of these instead of every day.
    Block,
}

impl Span {
    /// Longest first, as [`cover`] tries them.
    pub const ALL: [Span; 4] = [Span::Block, Span::Day, Span::Hour, Span::Quarter];

    pub fn ms(self) -> i64 {
        match self {
            Span::Quarter => QUARTER_MS,
            Span::Hour => HOUR_MS,
            Span::Day => DAY_MS,
            Span::Block => BLOCK_MS,
        }
    }

    /// The code stored in the rollup rows.
    pub fn code(self) -> &'static str {
        match self {
            Span::Quarter => "q",
            Span::Hour => "h",
            Span::Day => "d",
            Span::Block => "b",
        }
    }

    /// The start of the bucket of this span holding instant `at`.
    pub fn bucket(self, at: i64) -> i64 {
        at - at.rem_euclid(self.ms())
    }
}

/// The dimensions every sign-in is counted by (with its result): all of them, by method, by
/// failure reason, by operating system, browser and country (empty when unknown), and by
/// each Conditional Access policy that was evaluated.
pub const DIM_ALL: &str = "all";
pub const DIM_METHOD: &str = "method";
pub const DIM_REASON: &str = "reason";
pub const DIM_OS: &str = "os";
pub const DIM_BROWSER: &str = "browser";
pub const DIM_COUNTRY: &str = "country";
pub const DIM_POLICY: &str = "policy";
/// Accounts counted in the bucket of their first successful sign-in (per application, and
/// under [`ALL_APPLICATIONS`] for their first anywhere).
pub const DIM_NEW_USERS: &str = "new_users";
/// Text messages by country calling code, with their result (sent, refused, failed).
pub const DIM_TEXT: &str = "text";

/// The application name under which the users' counters and sketches of every application
/// together are kept (a user of two applications is one user of all).
pub const ALL_APPLICATIONS: &str = "*";
/// The sketches of the users with a successful sign-in.
pub const SKETCH_ACTIVE: &str = "active";

/// The fewest buckets whose union is exactly `[from, to)`: for each point, the longest span
/// aligned there that still fits. Both ends are rounded down to a quarter hour.
pub fn cover(from: i64, to: i64) -> Vec<(Span, i64)> {
    let (mut at, to) = (Span::Quarter.bucket(from), Span::Quarter.bucket(to));
    let mut out = Vec::new();
    while at < to {
        let span = Span::ALL
            .into_iter()
            .find(|s| at.rem_euclid(s.ms()) == 0 && at + s.ms() <= to)
            .unwrap_or(Span::Quarter);
        out.push((span, at));
        at += span.ms();
    }
    out
}

/// What one sign-in adds to the counters: one for each dimension, in each span's bucket.
fn keys_of(e: &SignInLogEntry) -> Vec<(&'static str, String, String)> {
    let result = e.result.clone();
    let mut keys = vec![
        (DIM_ALL, String::new(), result.clone()),
        (DIM_METHOD, e.method.clone(), result.clone()),
        (DIM_OS, e.os.clone().unwrap_or_default(), result.clone()),
        (
            DIM_BROWSER,
            e.browser.clone().unwrap_or_default(),
            result.clone(),
        ),
        (
            DIM_COUNTRY,
            e.country.clone().unwrap_or_default(),
            result.clone(),
        ),
    ];
    if let Some(reason) = e.failure_reason.as_deref().filter(|r| !r.is_empty()) {
        keys.push((DIM_REASON, reason.to_string(), result));
    }
    for (policy, outcome) in policy_outcomes(e.policies.as_deref()) {
        keys.push((DIM_POLICY, policy, outcome.to_string()));
    }
    keys
}

/// How each policy logged with a sign-in came out: `applied` or `not_applied` for a policy
/// that is on, `report_only_applied` or `report_only_not_applied` for one in report-only
/// mode (what it would have done).
pub fn policy_outcomes(json: Option<&str>) -> Vec<(String, &'static str)> {
    let Some(json) = json else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Array(results)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return Vec::new();
    };
    results
        .iter()
        .filter_map(|r| {
            let id = r.get("id")?.as_str()?.to_string();
            let applied = r.get("applied")?.as_bool()?;
            let report_only = r.get("state").and_then(|s| s.as_str()) == Some("report_only");
            let outcome = match (report_only, applied) {
                (false, true) => "applied",
                (false, false) => "not_applied",
                (true, true) => "report_only_applied",
                (true, false) => "report_only_not_applied",
            };
            Some((id, outcome))
        })
        .collect()
}

/// The counters a batch of sign-in log rows adds, summed by key (span, bucket, application,
/// dimension, value, result), in key order.
pub fn fold(rows: &[SignInLogEntry]) -> Vec<CountDelta> {
    let mut sums = Sums::new();
    for e in rows {
        for (dim, value, result) in keys_of(e) {
            add(
                &mut sums,
                e.occurred_at,
                &e.application,
                dim,
                &value,
                &result,
                1,
            );
        }
    }
    deltas_of(sums)
}

/// Counter sums by `(span, bucket, application, dim, value, result)`.
type Sums = BTreeMap<(Span, i64, String, &'static str, String, String), i64>;

/// Adds `n` to the counter of each span's bucket holding `at`.
fn add(
    sums: &mut Sums,
    at: i64,
    application: &str,
    dim: &'static str,
    value: &str,
    result: &str,
    n: i64,
) {
    for span in Span::ALL {
        *sums
            .entry((
                span,
                span.bucket(at),
                application.to_string(),
                dim,
                value.to_string(),
                result.to_string(),
            ))
            .or_insert(0) += n;
    }
}

/// Sums `(span, bucket, application, dim, value, result)` keys into deltas, leaving out
/// those that came to nothing.
fn deltas_of(
    sums: BTreeMap<(Span, i64, String, &'static str, String, String), i64>,
) -> Vec<CountDelta> {
    sums.into_iter()
        .filter(|(_, n)| *n != 0)
        .map(
            |((span, bucket, application, dim, value, result), n)| CountDelta {
                span: span.code().to_string(),
                bucket,
                application,
                dim: dim.to_string(),
                value,
                result,
                n,
            },
        )
        .collect()
}

/// The counters a batch of events adds: each by its kind as the dimension, with its value
/// and result, per application, in each span's bucket.
pub fn fold_events(events: &[InsightEvent]) -> Vec<CountDelta> {
    let mut sums = Sums::new();
    for e in events {
        let dim = match e.kind.as_str() {
            DIM_TEXT => DIM_TEXT,
            _ => continue,
        };
        add(
            &mut sums,
            e.occurred_at,
            &e.application,
            dim,
            &e.value,
            &e.result,
            1,
        );
    }
    deltas_of(sums)
}

/// Each account's first and last successful sign-in among the rows, per application and
/// under [`ALL_APPLICATIONS`].
pub fn activity(rows: &[SignInLogEntry]) -> BTreeMap<(String, String), (i64, i64)> {
    let mut out: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for e in rows.iter().filter(|e| e.result == "success") {
        let Some(user) = e.user_id.as_deref() else {
            continue;
        };
        for app in [e.application.as_str(), ALL_APPLICATIONS] {
            out.entry((user.to_string(), app.to_string()))
                .and_modify(|(first, last)| {
                    *first = (*first).min(e.occurred_at);
                    *last = (*last).max(e.occurred_at);
                })
                .or_insert((e.occurred_at, e.occurred_at));
        }
    }
    out
}

/// What a batch's activity changes in the users' first and last sign-ins as stored
/// (`existing`), and the new-user counters that follow: a user first seen is counted in the
/// bucket of that sign-in; a row older than the first one stored moves the count there.
pub fn user_updates(
    activity: &BTreeMap<(String, String), (i64, i64)>,
    existing: &[UserSpan],
) -> (Vec<UserSpan>, Vec<CountDelta>) {
    let stored: std::collections::HashMap<(&str, &str), (i64, i64)> = existing
        .iter()
        .map(|u| {
            (
                (u.user_id.as_str(), u.application.as_str()),
                (u.first_at, u.last_at),
            )
        })
        .collect();
    let mut spans = Vec::new();
    let mut sums = Sums::new();
    let mut count = |at: i64, app: &str, n: i64| add(&mut sums, at, app, DIM_NEW_USERS, "", "", n);
    for ((user, app), (first, last)) in activity {
        let (first_at, last_at) = match stored.get(&(user.as_str(), app.as_str())) {
            None => {
                count(*first, app, 1);
                (*first, *last)
            }
            Some((was_first, was_last)) => {
                let (f, l) = ((*was_first).min(*first), (*was_last).max(*last));
                if f != *was_first {
                    count(*was_first, app, -1);
                    count(f, app, 1);
                }
                if (f, l) == (*was_first, *was_last) {
                    continue;
                }
                (f, l)
            }
        };
        spans.push(UserSpan {
            user_id: user.clone(),
            application: app.clone(),
            first_at,
            last_at,
        });
    }
    (spans, deltas_of(sums))
}

/// A distinct-count sketch of user ids: HyperLogLog++ with 4,096 registers (the
/// `cardinality-estimator` crate), exact up to a few hundred users and within 1.6% (one
/// standard error) above. Sketches of two buckets merge into the sketch of their union, so
/// the users of any local day or month are estimated from the buckets that cover it.
#[derive(Clone, Default)]
pub struct Sketch(CardinalityEstimator<str>);

/// The version of the stored form of a [`Sketch`]; a change of the crate's representation
/// must come with a new one (a test pins the bytes of a known sketch).
const SKETCH_FORMAT: u8 = 1;

/// The 64-bit hash a user id is counted by: stable across builds and versions.
fn user_hash(user_id: &str) -> u64 {
    let digest = Sha256::digest(user_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sketch(~{})", self.estimate())
    }
}

impl Sketch {
    pub fn insert_user(&mut self, user_id: &str) {
        self.0.insert_hash(user_hash(user_id));
    }

    pub fn merge(&mut self, other: &Sketch) {
        self.0.merge(&other.0);
    }

    /// The estimated number of distinct users.
    pub fn estimate(&self) -> i64 {
        i64::try_from(self.0.estimate()).unwrap_or(i64::MAX)
    }

    /// The stored form: the format, whether registers follow, the crate's data word (its
    /// inline hashes, or the representation's tag) and its registers or hashes, little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let value = serde_json::to_value(&self.0).unwrap_or_default();
        let data = value.get(0).and_then(|v| v.as_u64()).unwrap_or(0);
        let words: Option<Vec<u32>> = value.get(1).and_then(|v| v.as_array()).map(|a| {
            a.iter()
                .map(|w| w.as_u64().and_then(|w| u32::try_from(w).ok()).unwrap_or(0))
                .collect()
        });
        // With registers or hashes beside it, the data word is their address and its
        // representation tag (the two low bits); only the tag is kept.
        let data = if words.is_some() { data & 0b11 } else { data };
        let mut out = Vec::with_capacity(10 + 4 * words.as_ref().map_or(0, Vec::len));
        out.push(SKETCH_FORMAT);
        out.push(u8::from(words.is_some()));
        out.extend_from_slice(&data.to_le_bytes());
        for w in words.iter().flatten() {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// The sketch of a stored form, `None` when it is not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Sketch> {
        let (head, rest) = bytes.split_first_chunk::<2>()?;
        let [format, has_words] = *head;
        if format != SKETCH_FORMAT || rest.len() < 8 || (rest.len() - 8) % 4 != 0 {
            return None;
        }
        let (data, words) = rest.split_at(8);
        let data = u64::from_le_bytes(data.try_into().ok()?);
        let words: Vec<u32> = words
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let words = match has_words {
            0 if words.is_empty() => None,
            1 => Some(words),
            _ => return None,
        };
        serde_json::from_value(serde_json::json!([data, words]))
            .ok()
            .map(Sketch)
    }
}

/// The sketches a batch adds to: the users with a successful sign-in in each span's bucket,
/// per application and under [`ALL_APPLICATIONS`].
pub fn active_sketches(rows: &[SignInLogEntry]) -> BTreeMap<(Span, i64, String), Sketch> {
    let mut out: BTreeMap<(Span, i64, String), Sketch> = BTreeMap::new();
    for e in rows.iter().filter(|e| e.result == "success") {
        let Some(user) = e.user_id.as_deref() else {
            continue;
        };
        for span in Span::ALL {
            for app in [e.application.as_str(), ALL_APPLICATIONS] {
                out.entry((span, span.bucket(e.occurred_at), app.to_string()))
                    .or_default()
                    .insert_user(user);
            }
        }
    }
    out
}

/// One period of a dashboard (a local day or month): its first day as `YYYY-MM-DD` or its
/// month as `YYYY-MM`, and the instants it runs between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub label: String,
    pub from: i64,
    pub to: i64,
}

/// Why a time zone name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?} (use an IANA name such as Europe/Paris, or UTC)")]
pub struct UnknownZone(pub String);

/// The IANA time zone of that name.
pub fn zone(name: &str) -> Result<TimeZone, UnknownZone> {
    let name = name.trim();
    if name.is_empty() || name.eq_ignore_ascii_case("utc") {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|_| UnknownZone(name.to_string()))
}

fn start_of(day: Date, tz: &TimeZone) -> i64 {
    day.to_zoned(tz.clone())
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or_default()
}

/// The local date of instant `at` in the zone.
pub fn local_date(at: i64, tz: &TimeZone) -> Date {
    Timestamp::from_millisecond(at)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone())
        .date()
}

/// The last `count` local days up to and including the one holding `now`, oldest first.
pub fn days(now: i64, count: u32, tz: &TimeZone) -> Vec<Period> {
    let today = local_date(now, tz);
    (0..count)
        .rev()
        .filter_map(|back| today.checked_sub(i64::from(back).days()).ok())
        .map(|day| {
            let next = day.tomorrow().unwrap_or(day);
            Period {
                label: day.to_string(),
                from: start_of(day, tz),
                to: start_of(next, tz),
            }
        })
        .collect()
}

/// The last `count` local months up to and including the one holding `now`, oldest first.
pub fn months(now: i64, count: u32, tz: &TimeZone) -> Vec<Period> {
    let first = local_date(now, tz).first_of_month();
    (0..count)
        .rev()
        .filter_map(|back| first.checked_sub(i64::from(back).months()).ok())
        .map(|month| {
            let next = month.checked_add(1.month()).unwrap_or(month);
            Period {
                label: format!("{:04}-{:02}", month.year(), month.month()),
                from: start_of(month, tz),
                to: start_of(next, tz),
            }
        })
        .collect()
}

/// The rollup buckets to read for the periods, by span: each span's buckets merged into
/// runs `[from, to)` of consecutive bucket starts, so a few range reads fetch them all.
pub fn reads(periods: &[Period]) -> Vec<(Span, i64, i64)> {
    let mut by_span: BTreeMap<Span, Vec<i64>> = BTreeMap::new();
    for p in periods {
        for (span, at) in cover(p.from, p.to) {
            by_span.entry(span).or_default().push(at);
        }
    }
    let mut out = Vec::new();
    for (span, mut starts) in by_span {
        starts.sort_unstable();
        let mut run: Option<(i64, i64)> = None;
        for at in starts {
            run = match run {
                Some((from, to)) if at == to => Some((from, at + span.ms())),
                Some((from, to)) => {
                    out.push((span, from, to));
                    Some((at, at + span.ms()))
                }
                None => Some((at, at + span.ms())),
            };
        }
        if let Some((from, to)) = run {
            out.push((span, from, to));
        }
    }
    out
}

/// Which of the periods (index) a bucket read for them belongs to: the bucket lies within
/// one period by construction of [`cover`]; `None` for a bucket outside them all.
pub fn period_of(periods: &[Period], bucket: i64) -> Option<usize> {
    let i = periods.partition_point(|p| p.from <= bucket);
    let i = i.checked_sub(1)?;
    (bucket < periods[i].to).then_some(i)
}

/// One dashboard table: a row per label (each period, or each value of a dimension), a
/// column per series (for example each result), the counts of the rollup rows summed into
/// their cells.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    pub labels: Vec<String>,
    pub series: Vec<String>,
    /// `cells[label][series]`.
    pub cells: Vec<Vec<i64>>,
}

/// Sums `rows` read for `periods` (see [`reads`]) into `(label, series)` cells; rows of
/// buckets that no period's cover holds are left out.
fn sums(
    periods: &[Period],
    rows: &[(Span, CountRow)],
    key: impl Fn(usize, &CountRow) -> Option<(String, String)>,
) -> BTreeMap<(String, String), i64> {
    let covered: std::collections::HashSet<(Span, i64)> =
        periods.iter().flat_map(|p| cover(p.from, p.to)).collect();
    let mut out = BTreeMap::new();
    for (span, row) in rows {
        if !covered.contains(&(*span, row.bucket)) {
            continue;
        }
        let Some(i) = period_of(periods, row.bucket) else {
            continue;
        };
        if let Some(k) = key(i, row) {
            *out.entry(k).or_insert(0) += row.n;
        }
    }
    out
}

/// Rows counted at instants (`bucket` is when each happened, not a rollup bucket) as rows
/// of the buckets that cover the periods: each in the one bucket of its period's cover that
/// holds it, so [`Table::series`] and [`Table::breakdown`] read them as they read counters.
pub fn bucketed(periods: &[Period], rows: &[CountRow]) -> Vec<(Span, CountRow)> {
    let covers: Vec<Vec<(Span, i64)>> = periods.iter().map(|p| cover(p.from, p.to)).collect();
    rows.iter()
        .filter_map(|r| {
            let buckets = &covers[period_of(periods, r.bucket)?];
            let i = buckets
                .partition_point(|(_, start)| *start <= r.bucket)
                .checked_sub(1)?;
            let (span, start) = buckets[i];
            Some((
                span,
                CountRow {
                    bucket: start,
                    ..r.clone()
                },
            ))
        })
        .collect()
}

/// Names ordered by their total, largest first, then by name.
fn by_total(totals: BTreeMap<String, i64>) -> Vec<String> {
    let mut names: Vec<(String, i64)> = totals.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    names.into_iter().map(|(name, _)| name).collect()
}

impl Table {
    /// A row per period (every one, with zeros where nothing happened) and a column per
    /// series that `series_of` names (`None` leaves a row out), largest total first.
    pub fn series(
        periods: &[Period],
        rows: &[(Span, CountRow)],
        series_of: impl Fn(&CountRow) -> Option<String>,
    ) -> Table {
        let sums = sums(periods, rows, |i, r| {
            series_of(r).map(|s| (periods[i].label.clone(), s))
        });
        Table::from_sums(periods.iter().map(|p| p.label.clone()).collect(), sums)
    }

    /// Over all the periods together: a row per value that `value_of` names (largest total
    /// first) and a column per series.
    pub fn breakdown(
        periods: &[Period],
        rows: &[(Span, CountRow)],
        value_of: impl Fn(&CountRow) -> Option<String>,
        series_of: impl Fn(&CountRow) -> Option<String>,
    ) -> Table {
        let sums = sums(periods, rows, |_, r| Some((value_of(r)?, series_of(r)?)));
        Table::ranked(sums)
    }

    /// A table of one series from labels and their numbers, in the order given.
    pub fn column(series: &str, rows: Vec<(String, i64)>) -> Table {
        let (labels, cells) = rows.into_iter().map(|(l, n)| (l, vec![n])).unzip();
        Table {
            labels,
            series: vec![series.to_string()],
            cells,
        }
    }

    /// A row per label of the sums, largest total first.
    fn ranked(sums: BTreeMap<(String, String), i64>) -> Table {
        let mut totals = BTreeMap::new();
        for ((label, _), n) in &sums {
            *totals.entry(label.clone()).or_insert(0) += n;
        }
        Table::from_sums(by_total(totals), sums)
    }

    fn from_sums(labels: Vec<String>, sums: BTreeMap<(String, String), i64>) -> Table {
        let mut totals = BTreeMap::new();
        for ((_, series), n) in &sums {
            *totals.entry(series.clone()).or_insert(0) += n;
        }
        let series = by_total(totals);
        let cells = labels
            .iter()
            .map(|label| {
                series
                    .iter()
                    .map(|s| sums.get(&(label.clone(), s.clone())).copied().unwrap_or(0))
                    .collect()
            })
            .collect();
        Table {
            labels,
            series,
            cells,
        }
    }

    /// The sum of one series over every period.
    pub fn total(&self, series: &str) -> i64 {
        self.series
            .iter()
            .position(|s| s == series)
            .map(|j| self.cells.iter().map(|row| row[j]).sum())
            .unwrap_or(0)
    }

    /// The table as CSV: a header of `period` and the series, a line per period.
    pub fn csv(&self, first: &str) -> String {
        let mut out = String::new();
        let mut header = vec![first.to_string()];
        header.extend(self.series.iter().cloned());
        out.push_str(&csv_line(&header));
        for (label, row) in self.labels.iter().zip(&self.cells) {
            let mut line = vec![label.clone()];
            line.extend(row.iter().map(i64::to_string));
            out.push_str(&csv_line(&line));
        }
        out
    }
}

/// What one run of the rollup job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupRun {
    pub rows: u64,
    pub batches: u32,
    /// Whether it read everything there was to read.
    pub caught_up: bool,
}

/// One batch read from a rollup's source: how many rows, the `(seq, id)` of the last, and
/// what they add.
struct Batch {
    rows: usize,
    seq: i64,
    id: String,
    write: RollupWrite,
}

/// Rows read with their `seq`, without it, and the `(seq, id)` of the last; `None` for none.
fn unnumbered<T>(rows: Vec<(i64, T)>, id: impl Fn(&T) -> &str) -> Option<(Vec<T>, i64, String)> {
    let (seq, last) = rows.last()?;
    let (seq, last) = (*seq, id(last).to_string());
    Some((rows.into_iter().map(|(_, r)| r).collect(), seq, last))
}

/// The sources the rollup job reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    SignIns,
    Events,
}

impl Source {
    fn watermark(self) -> &'static str {
        match self {
            Source::SignIns => SIGN_IN_ROLLUP,
            Source::Events => EVENT_ROLLUP,
        }
    }

    /// Up to `batch` rows after `from`, and what they add.
    async fn next(self, store: &Store, from: &Watermark, batch: i64) -> StoreResult<Option<Batch>> {
        Ok(match self {
            Source::SignIns => {
                let Some((rows, seq, id)) =
                    unnumbered(store.sign_ins_to_roll_up(from, batch).await?, |e| &e.id)
                else {
                    return Ok(None);
                };
                let write = sign_in_batch(store, &rows).await?;
                Some(Batch {
                    rows: rows.len(),
                    seq,
                    id,
                    write,
                })
            }
            Source::Events => {
                let Some((rows, seq, id)) =
                    unnumbered(store.events_to_roll_up(from, batch).await?, |e| &e.id)
                else {
                    return Ok(None);
                };
                let write = RollupWrite {
                    deltas: fold_events(&rows),
                    ..RollupWrite::default()
                };
                Some(Batch {
                    rows: rows.len(),
                    seq,
                    id,
                    write,
                })
            }
        })
    }

    /// Reads a batch after the watermark, writes what it adds and moves the watermark in
    /// one transaction, at most `max_batches` times. A batch whose watermark another
    /// instance moved first is dropped, and the run ends.
    async fn run(
        self,
        store: &Store,
        now: i64,
        batch: i64,
        max_batches: u32,
    ) -> StoreResult<RollupRun> {
        let mut run = RollupRun::default();
        for _ in 0..max_batches {
            let from = store.watermark(self.watermark()).await?;
            let Some(b) = self.next(store, &from, batch).await? else {
                run.caught_up = true;
                break;
            };
            let to = Watermark {
                seq: b.seq,
                id: b.id,
                rows_done: from.rows_done + b.rows as i64,
                updated_at: now,
            };
            if !store
                .apply_rollup(self.watermark(), &from, &to, &b.write)
                .await?
            {
                break;
            }
            run.rows += b.rows as u64;
            run.batches += 1;
            if (b.rows as i64) < batch {
                run.caught_up = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(run)
    }
}

/// What a batch of sign-in log rows adds: the counters, the users' first and last
/// sign-ins (read as stored, then updated) with the new-user counters, and the sketches of
/// active users merged into those stored.
async fn sign_in_batch(store: &Store, rows: &[SignInLogEntry]) -> StoreResult<RollupWrite> {
    let mut deltas = fold(rows);
    let mut seen = activity(rows);
    let mut ids: Vec<String> = seen.keys().map(|(user, _)| user.clone()).collect();
    ids.dedup();
    // Accounts deleted since their rows were logged are neither new nor kept.
    let exist: std::collections::HashSet<String> =
        store.existing_users(&ids).await?.into_iter().collect();
    seen.retain(|(user, _), _| exist.contains(user));
    ids.retain(|id| exist.contains(id));
    let existing = store.user_spans(&ids).await?;
    let (users, new_users) = user_updates(&seen, &existing);
    deltas.extend(new_users);
    let mut added = active_sketches(rows);
    for span in Span::ALL {
        let mut buckets: Vec<i64> = added
            .keys()
            .filter(|(s, _, _)| *s == span)
            .map(|(_, b, _)| *b)
            .collect();
        buckets.dedup();
        if buckets.is_empty() {
            continue;
        }
        for stored in store
            .sketches_at(span.code(), SKETCH_ACTIVE, &buckets)
            .await?
        {
            if let (Some(sketch), Some(stored_sketch)) = (
                added.get_mut(&(span, stored.bucket, stored.application.clone())),
                Sketch::from_bytes(&stored.sketch),
            ) {
                sketch.merge(&stored_sketch);
            }
        }
    }
    let sketches = added
        .into_iter()
        .map(|((span, bucket, application), sketch)| SketchRow {
            span: span.code().to_string(),
            bucket,
            kind: SKETCH_ACTIVE.to_string(),
            application,
            sketch: sketch.to_bytes(),
        })
        .collect();
    Ok(RollupWrite {
        deltas,
        users,
        sketches,
    })
}

/// Folds the sign-in log rows written since the watermark into the counters, the users'
/// first and last sign-ins and the sketches, `batch` rows a transaction, at most
/// `max_batches` of them (the next run goes on from there); then the events the same way.
/// This and the readers below are the parts of this module that use the store.
pub async fn roll_up(
    store: &Store,
    now: i64,
    batch: i64,
    max_batches: u32,
) -> StoreResult<RollupRun> {
    let sign_ins = Source::SignIns.run(store, now, batch, max_batches).await?;
    let events = Source::Events.run(store, now, batch, max_batches).await?;
    Ok(RollupRun {
        rows: sign_ins.rows,
        batches: sign_ins.batches,
        caught_up: sign_ins.caught_up && events.caught_up,
    })
}

/// The distinct users of each period among the sketches of kind `kind`, of one application
/// or of all ([`ALL_APPLICATIONS`]): the sketches of each period's buckets merged.
pub async fn distinct(
    store: &Store,
    periods: &[Period],
    kind: &str,
    application: &str,
) -> StoreResult<Vec<i64>> {
    let covered: std::collections::HashSet<(Span, i64)> =
        periods.iter().flat_map(|p| cover(p.from, p.to)).collect();
    let mut merged = vec![Sketch::default(); periods.len()];
    for (span, from, to) in reads(periods) {
        for row in store
            .sketches_between(span.code(), kind, application, from, to)
            .await?
        {
            if !covered.contains(&(span, row.bucket)) {
                continue;
            }
            if let (Some(i), Some(sketch)) = (
                period_of(periods, row.bucket),
                Sketch::from_bytes(&row.sketch),
            ) {
                merged[i].merge(&sketch);
            }
        }
    }
    Ok(merged.iter().map(Sketch::estimate).collect())
}

/// The counters of dimensions `dims` that the periods need, of one application or all, each
/// with its span.
pub async fn read(
    store: &Store,
    periods: &[Period],
    dims: &[&str],
    application: Option<&str>,
) -> StoreResult<Vec<(Span, CountRow)>> {
    let mut out = Vec::new();
    for (span, from, to) in reads(periods) {
        let rows = store
            .insight_counts(span.code(), from, to, dims, application)
            .await?;
        out.extend(rows.into_iter().map(|r| (span, r)));
    }
    Ok(out)
}

/// One CSV line: fields quoted when they need it, cells that a spreadsheet would run as a
/// formula defused with a leading apostrophe.
fn csv_line(fields: &[String]) -> String {
    let cells: Vec<String> = fields
        .iter()
        .map(|f| {
            let f = if f.starts_with(['=', '+', '-', '@']) && f.parse::<i64>().is_err() {
                format!("'{f}")
            } else {
                f.clone()
            };
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f
            }
        })
        .collect();
    format!("{}\r\n", cells.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(at: i64, result: &str, method: &str) -> SignInLogEntry {
        SignInLogEntry {
            id: format!("{at}-{result}"),
            occurred_at: at,
            application: "account".into(),
            method: method.into(),
            result: result.into(),
            failure_reason: (result == "failure").then(|| "invalid_credentials".into()),
            ..SignInLogEntry::default()
        }
    }

    proptest! {
        #[test]
        fn a_cover_is_exact_and_disjoint(from in -400i64..400, len in 0i64..3_000) {
            let (from, to) = (from * QUARTER_MS, (from + len) * QUARTER_MS);
            let buckets = cover(from, to);
            let mut at = from;
            for (span, start) in &buckets {
                prop_assert_eq!(*start, at);
                prop_assert_eq!(start.rem_euclid(span.ms()), 0);
                at += span.ms();
            }
            prop_assert_eq!(at, to);
            // Greedy from the left is the fewest: never four quarters where an hour fits.
            prop_assert!(buckets.iter().filter(|(s, _)| *s == Span::Quarter).count() <= 6);
        }
    }

    #[test]
    fn a_local_day_is_covered_across_daylight_saving_and_half_hour_zones() {
        let paris = zone("Europe/Paris").unwrap();
        // 2026-03-29: clocks go forward in Paris, so that local day has 23 hours.
        let now = Timestamp::from_second(1_774_785_600)
            .unwrap()
            .as_millisecond(); // 2026-03-29T12:00Z
        let day = days(now, 1, &paris).remove(0);
        assert_eq!(day.label, "2026-03-29");
        assert_eq!(day.to - day.from, 23 * HOUR_MS);
        assert!(cover(day.from, day.to)
            .iter()
            .all(|(s, _)| *s == Span::Hour));
        let kolkata = zone("Asia/Kolkata").unwrap();
        let day = days(now, 1, &kolkata).remove(0);
        let spans: Vec<Span> = cover(day.from, day.to)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(spans.len(), 2 + 23 + 2);
        assert_eq!(spans.iter().filter(|s| **s == Span::Quarter).count(), 4);
        let utc = days(now, 3, &TimeZone::UTC);
        assert!(utc
            .iter()
            .all(|d| cover(d.from, d.to) == vec![(Span::Day, d.from)]));
        assert_eq!(
            zone("Mars/Olympus"),
            Err(UnknownZone("Mars/Olympus".into()))
        );
    }

    #[test]
    fn months_run_from_the_first_local_day() {
        let tokyo = zone("Asia/Tokyo").unwrap();
        let now = Timestamp::from_second(1_772_323_200)
            .unwrap()
            .as_millisecond(); // 2026-03-01T00:00Z
        let m = months(now, 3, &tokyo);
        let labels: Vec<&str> = m.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["2026-01", "2026-02", "2026-03"]);
        assert_eq!(m[2].from, now - 9 * HOUR_MS);
        assert_eq!(m[1].to, m[2].from);
    }

    #[test]
    fn folding_counts_each_dimension_in_each_span() {
        let rows = [
            entry(0, "success", "password"),
            entry(QUARTER_MS, "failure", "password"),
            entry(HOUR_MS + 1, "success", "passkey"),
        ];
        let deltas = fold(&rows);
        let count = |span: &str, bucket: i64, dim: &str, value: &str, result: &str| {
            deltas
                .iter()
                .filter(|d| {
                    (
                        d.span.as_str(),
                        d.bucket,
                        d.dim.as_str(),
                        d.value.as_str(),
                        d.result.as_str(),
                    ) == (span, bucket, dim, value, result)
                })
                .map(|d| d.n)
                .sum::<i64>()
        };
        assert_eq!(count("d", 0, DIM_ALL, "", "success"), 2);
        assert_eq!(count("h", 0, DIM_ALL, "", "success"), 1);
        assert_eq!(count("h", HOUR_MS, DIM_METHOD, "passkey", "success"), 1);
        assert_eq!(
            count(
                "q",
                QUARTER_MS,
                DIM_REASON,
                "invalid_credentials",
                "failure"
            ),
            1
        );
        assert_eq!(
            count("q", 0, DIM_REASON, "invalid_credentials", "failure"),
            0
        );
        let policies = r#"[{"id":"p1","state":"report_only","applied":true},{"id":"p2","state":"on","applied":false}]"#;
        let mut e = entry(0, "success", "password");
        e.policies = Some(policies.into());
        let deltas = fold(&[e]);
        assert!(deltas
            .iter()
            .any(|d| d.dim == DIM_POLICY && d.value == "p1" && d.result == "report_only_applied"));
        assert!(deltas
            .iter()
            .any(|d| d.dim == DIM_POLICY && d.value == "p2" && d.result == "not_applied"));
    }

    #[test]
    fn tables_sum_rows_into_their_periods_and_write_safe_csv() {
        let periods = days(2 * DAY_MS + 5, 2, &TimeZone::UTC);
        let row = |bucket: i64, result: &str, n: i64| {
            (
                Span::Day,
                CountRow {
                    bucket,
                    dim: DIM_ALL.into(),
                    value: String::new(),
                    result: result.into(),
                    n,
                },
            )
        };
        let rows = [
            row(DAY_MS, "success", 3),
            row(2 * DAY_MS, "success", 4),
            row(2 * DAY_MS, "=cmd()", 1),
            row(9 * DAY_MS, "success", 100),
        ];
        let table = Table::series(&periods, &rows, |r| Some(r.result.clone()));
        assert_eq!(table.series, ["success", "=cmd()"]);
        assert_eq!(table.cells, vec![vec![3, 0], vec![4, 1]]);
        assert_eq!(table.total("success"), 7);
        assert_eq!(
            table.csv("day"),
            "day,success,'=cmd()\r\n1970-01-02,3,0\r\n1970-01-03,4,1\r\n"
        );
        let by_result = Table::breakdown(
            &periods,
            &rows,
            |r| Some(r.result.clone()),
            |_| Some("n".into()),
        );
        assert_eq!(by_result.labels, ["success", "=cmd()"]);
        assert_eq!(by_result.cells, vec![vec![7], vec![1]]);
    }

    #[test]
    fn sketches_count_distinct_users_merge_and_keep_their_stored_form() {
        let mut small = Sketch::default();
        for id in ["a", "b", "a", "c"] {
            small.insert_user(id);
        }
        assert_eq!(small.estimate(), 3);
        let back = Sketch::from_bytes(&small.to_bytes()).unwrap();
        assert_eq!(back.estimate(), 3);
        // Exact while small; within a few standard errors (1.6%) when large.
        let mut big = Sketch::default();
        let mut other = Sketch::default();
        for n in 0..20_000 {
            big.insert_user(&format!("user-{n}"));
            if n % 2 == 0 {
                other.insert_user(&format!("user-{n}"));
                other.insert_user(&format!("other-{n}"));
            }
        }
        let error = (big.estimate() - 20_000).abs() as f64 / 20_000.0;
        assert!(error < 0.05, "{}", big.estimate());
        let stored = big.to_bytes();
        let back = Sketch::from_bytes(&stored).unwrap();
        assert_eq!(back.estimate(), big.estimate());
        assert_eq!(back.to_bytes(), stored);
        // The union: 20,000 users and 10,000 others.
        let mut union = back;
        union.merge(&other);
        let error = (union.estimate() - 30_000).abs() as f64 / 30_000.0;
        assert!(error < 0.05, "{}", union.estimate());
        // What is not a stored sketch is refused, never misread.
        let bad: [&[u8]; 4] = [
            b"",
            &[2, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 0, 0],
            &stored[..15],
        ];
        for bad in bad {
            assert!(Sketch::from_bytes(bad).is_none(), "{bad:?}");
        }
        // The stored form is pinned: a change of the crate's representation must come with
        // a new format (and a way to read the old one).
        let digest = Sha256::digest(&stored);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, PINNED_SKETCH, "{} bytes", stored.len());
        assert_eq!(format!("{small:?}"), "Sketch(~3)");
    }

    /// The SHA-256 of the stored form of the sketch of `user-0` .. `user-19999`.
    const PINNED_SKETCH: &str = "bf2877c010b71fede68c2a2886c477246fab49bccc2bf33928a91c63e75e883a";

    #[test]
    fn new_users_are_counted_at_their_first_sign_in_and_move_with_an_older_row() {
        let mut a = entry(5 * DAY_MS, "success", "password");
        a.user_id = Some("u1".into());
        let mut b = entry(6 * DAY_MS, "success", "password");
        b.user_id = Some("u1".into());
        b.application = "shop".into();
        let failed = SignInLogEntry {
            user_id: Some("u2".into()),
            ..entry(5 * DAY_MS, "failure", "password")
        };
        let seen = activity(&[a.clone(), b, failed]);
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(
            seen[&("u1".to_string(), ALL_APPLICATIONS.to_string())],
            (5 * DAY_MS, 6 * DAY_MS)
        );
        let (spans, deltas) = user_updates(&seen, &[]);
        assert_eq!(spans.len(), 3);
        let new_in = |deltas: &[CountDelta], app: &str, bucket: i64| {
            deltas
                .iter()
                .filter(|d| d.span == "d" && d.application == app && d.bucket == bucket)
                .map(|d| d.n)
                .sum::<i64>()
        };
        assert_eq!(new_in(&deltas, ALL_APPLICATIONS, 5 * DAY_MS), 1);
        assert_eq!(new_in(&deltas, "shop", 6 * DAY_MS), 1);
        // Seen again later: nothing new. A row older than the first: the count moves.
        let mut later = a.clone();
        later.occurred_at = 9 * DAY_MS;
        let (spans2, deltas2) = user_updates(&activity(&[later]), &spans);
        assert!(deltas2.is_empty(), "{deltas2:?}");
        assert_eq!(spans2[0].last_at, 9 * DAY_MS);
        let mut older = a;
        older.occurred_at = 2 * DAY_MS;
        let (_, moved) = user_updates(&activity(&[older]), &spans);
        assert_eq!(new_in(&moved, "account", 5 * DAY_MS), -1);
        assert_eq!(new_in(&moved, "account", 2 * DAY_MS), 1);
    }

    #[test]
    fn rows_counted_at_instants_fall_in_the_bucket_of_their_period_that_holds_them() {
        let kolkata = zone("Asia/Kolkata").unwrap();
        let periods = days(3 * DAY_MS + HOUR_MS, 3, &kolkata);
        let row = |at: i64, level: &str| CountRow {
            bucket: at,
            dim: String::new(),
            value: "leaked_credentials".into(),
            result: level.into(),
            n: 1,
        };
        // Each local day starts at 18:30 UTC: one detection just before a start, one at it, one
        // in a quarter hour at a day's edge, one outside every period.
        let rows: Vec<CountRow> = [
            (periods[1].from - 1, "high"),
            (periods[1].from, "low"),
            (periods[2].from + 7 * 60_000, "high"),
            (periods[2].to + 5, "high"),
        ]
        .into_iter()
        .map(|(at, level)| row(at, level))
        .collect();
        let placed = bucketed(&periods, &rows);
        assert_eq!(placed.len(), 3);
        let table = Table::series(&periods, &placed, |r| Some(r.result.clone()));
        assert_eq!(table.labels.len(), 3);
        let at = |day: usize, level: &str| {
            let j = table.series.iter().position(|s| s == level).unwrap();
            table.cells[day][j]
        };
        assert_eq!((at(0, "high"), at(1, "low"), at(2, "high")), (1, 1, 1));
        assert_eq!(table.total("high") + table.total("low"), 3);
    }
}
