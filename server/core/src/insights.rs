//! Usage and insights: the rollups of the sign-in log and the periods the dashboards show.
//!
//! A job folds new sign-in log rows into counters (see [`fold`]), each kept for three spans
//! of time in UTC: quarter hours, hours and days. Every time zone in use today has an offset
//! that is a whole number of quarter hours, so any local day or month is an exact union of
//! such buckets ([`cover`]): the days in the middle, hours and quarter hours at its edges. So
//! the dashboards count exactly in the admin's own time zone, across daylight-saving changes,
//! without keeping rollups per zone.
//!
//! Everything here is pure but [`roll_up`] and [`read`], which drive the store; the console
//! and the API reach them through [`crate::identity::Identity`].

use std::collections::BTreeMap;

use jiff::civil::Date;
pub use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::store::{
    CountDelta, CountRow, SignInLogEntry, Store, StoreResult, Watermark, SIGN_IN_ROLLUP,
};

/// The lengths of the rollup spans.
pub const QUARTER_MS: i64 = 15 * 60 * 1000;
pub const HOUR_MS: i64 = 60 * 60 * 1000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// One span of rollup buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Span {
    Quarter,
    Hour,
    Day,
}

impl Span {
    pub const ALL: [Span; 3] = [Span::Day, Span::Hour, Span::Quarter];

    pub fn ms(self) -> i64 {
        match self {
            Span::Quarter => QUARTER_MS,
            Span::Hour => HOUR_MS,
            Span::Day => DAY_MS,
        }
    }

    /// The code stored in the rollup rows.
    pub fn code(self) -> &'static str {
        match self {
            Span::Quarter => "q",
            Span::Hour => "h",
            Span::Day => "d",
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
    let mut sums: BTreeMap<(Span, i64, String, &'static str, String, String), i64> =
        BTreeMap::new();
    for e in rows {
        for (dim, value, result) in keys_of(e) {
            for span in Span::ALL {
                *sums
                    .entry((
                        span,
                        span.bucket(e.occurred_at),
                        e.application.clone(),
                        dim,
                        value.clone(),
                        result.clone(),
                    ))
                    .or_default() += 1;
            }
        }
    }
    sums.into_iter()
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

/// Folds the sign-in log rows written since the watermark into the counters, `batch` rows a
/// transaction, at most `max_batches` of them (the next run goes on from there). A batch
/// whose watermark another instance moved first is dropped, and the run ends. This and
/// [`read`] are the two parts of this module that use the store.
pub async fn roll_up(
    store: &Store,
    now: i64,
    batch: i64,
    max_batches: u32,
) -> StoreResult<RollupRun> {
    let mut run = RollupRun::default();
    for _ in 0..max_batches {
        let from = store.watermark(SIGN_IN_ROLLUP).await?;
        let rows = store.sign_ins_to_roll_up(&from, batch).await?;
        let Some((seq, last)) = rows.last() else {
            run.caught_up = true;
            break;
        };
        let count = rows.len();
        let to = Watermark {
            seq: *seq,
            id: last.id.clone(),
            rows_done: from.rows_done + count as i64,
            updated_at: now,
        };
        let entries: Vec<SignInLogEntry> = rows.into_iter().map(|(_, e)| e).collect();
        if !store
            .apply_rollup(SIGN_IN_ROLLUP, &from, &to, &fold(&entries))
            .await?
        {
            break;
        }
        run.rows += count as u64;
        run.batches += 1;
        if (count as i64) < batch {
            run.caught_up = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(run)
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
}
