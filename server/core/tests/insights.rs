//! The insights rollups equal a brute-force count of the sign-in log: over generated data,
//! per local day in two time zones (one with daylight saving, one half an hour off UTC) and
//! per month, for all applications and for one, after a run that was cut short and a rerun
//! with rows written meanwhile (some dated before the watermark), and with a second instance
//! replaying a batch it read before the first moved on. On SQLite, and on PostgreSQL when
//! `GATEHOUSE_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use gatehouse_core::generate::{self, Plan};
use gatehouse_core::identity::insights::{authentications, mfa, users};
use gatehouse_core::insights::{self, Period, Table};
use gatehouse_core::store::testing::{fresh_postgres_url, fresh_sqlite_url, postgres_url};
use gatehouse_core::store::{
    CountDelta, InsightEvent, NewUser, RollupWrite, SignInLogEntry, Store, SIGN_IN_ROLLUP,
};

async fn stores() -> Vec<(&'static str, Store)> {
    let mut out = Vec::new();
    let sqlite = Store::connect(&fresh_sqlite_url(), 4).await.unwrap();
    sqlite.migrate().await.unwrap();
    out.push(("sqlite", sqlite));
    match postgres_url() {
        Some(base) => {
            let url = fresh_postgres_url(&base).await.unwrap();
            let pg = Store::connect(&url, 8).await.unwrap();
            pg.migrate().await.unwrap();
            out.push(("postgres", pg));
        }
        None => {
            eprintln!("PostgreSQL insights test skipped: GATEHOUSE_TEST_POSTGRES_URL is not set")
        }
    }
    out
}

/// 2026-03-31T12:00Z: the 40 days before hold both daylight-saving changes of New York
/// (8 March) and Paris (29 March).
const UNTIL: i64 = 1_774_958_400_000;

fn log() -> Vec<SignInLogEntry> {
    let plan = Plan {
        users: 40,
        sign_ins: 6_000,
        days: 40,
        until: UNTIL,
        seed: 7,
    };
    let apps = vec!["account".to_string(), "shop".to_string()];
    let mut rows: Vec<SignInLogEntry> = generate::sign_ins(&plan, 0, &apps).collect();
    // Some attempts went through Conditional Access: one policy on, one in report-only.
    for (i, e) in rows.iter_mut().enumerate().filter(|(i, _)| i % 7 == 0) {
        e.policies = Some(format!(
            r#"[{{"id":"mfa","state":"on","applied":{}}},{{"id":"geo","state":"report_only","applied":{}}}]"#,
            i % 2 == 0,
            i % 3 == 0
        ));
    }
    // Two accounts that signed in once, 35 and 70 days ago: inactive for 30 days, and for 60.
    for (i, days) in [35, 70].into_iter().enumerate() {
        let mut idle = rows[0].clone();
        idle.id = format!("idle-{i}");
        idle.user_id = Some(format!("idle-{i}"));
        idle.result = "success".into();
        idle.failure_reason = None;
        idle.occurred_at = UNTIL - days * insights::DAY_MS;
        rows.push(idle);
    }
    rows
}

/// Counts by (label, series) computed row by row: the period holding the attempt, and the
/// series and label `key` gives it.
fn by_hand(
    rows: &[SignInLogEntry],
    periods: &[Period],
    key: impl Fn(&Period, &SignInLogEntry) -> Option<(String, String)>,
) -> BTreeMap<(String, String), i64> {
    let mut out = BTreeMap::new();
    for e in rows {
        if let Some(p) = periods
            .iter()
            .find(|p| p.from <= e.occurred_at && e.occurred_at < p.to)
        {
            if let Some(k) = key(p, e) {
                *out.entry(k).or_insert(0) += 1;
            }
        }
    }
    out
}

fn cells(table: &Table) -> BTreeMap<(String, String), i64> {
    let mut out = BTreeMap::new();
    for (label, row) in table.labels.iter().zip(&table.cells) {
        for (series, n) in table.series.iter().zip(row) {
            if *n != 0 {
                out.insert((label.clone(), series.clone()), *n);
            }
        }
    }
    out
}

async fn check(name: &str, store: &Store, rows: &[SignInLogEntry]) {
    for zone in ["America/New_York", "Asia/Kolkata", "UTC"] {
        let tz = insights::zone(zone).unwrap();
        let days = insights::days(UNTIL, 45, &tz);
        for app in [None, Some("shop")] {
            let mine: Vec<SignInLogEntry> = rows
                .iter()
                .filter(|e| app.is_none_or(|a| e.application == a))
                .cloned()
                .collect();
            let report = authentications(store, &days, app).await.unwrap();
            let what = format!("{name} {zone} {app:?}");
            assert_eq!(report.per_day.labels.len(), 45, "{what}");
            assert_eq!(
                cells(&report.per_day),
                by_hand(&mine, &days, |p, e| Some((
                    p.label.clone(),
                    e.result.clone()
                ))),
                "per day, {what}"
            );
            assert_eq!(
                cells(&report.reasons),
                by_hand(&mine, &days, |p, e| e
                    .failure_reason
                    .clone()
                    .map(|r| (p.label.clone(), r))),
                "reasons, {what}"
            );
            assert_eq!(
                cells(&report.methods),
                by_hand(&mine, &days, |_, e| Some((
                    e.method.clone(),
                    e.result.clone()
                ))),
                "methods, {what}"
            );
            assert_eq!(
                cells(&report.countries),
                by_hand(&mine, &days, |_, e| Some((
                    e.country.clone().unwrap_or_else(|| "unknown".into()),
                    e.result.clone()
                ))),
                "countries, {what}"
            );
        }
        check_users(&format!("{name} {zone}"), store, rows, &tz).await;
        // Months: the counters of the days, hours and quarters of each local month.
        let months = insights::months(UNTIL, 3, &tz);
        let report = authentications(store, &months, None).await.unwrap();
        assert_eq!(
            cells(&report.per_day),
            by_hand(rows, &months, |p, e| Some((
                p.label.clone(),
                e.result.clone()
            ))),
            "months, {name} {zone}"
        );
        // Conditional Access outcomes per policy.
        let tables = insights::read(store, &days, &[insights::DIM_POLICY], None)
            .await
            .unwrap();
        let outcomes = Table::breakdown(
            &days,
            &tables,
            |r| Some(r.value.clone()),
            |r| Some(r.result.clone()),
        );
        let expected = by_hand(rows, &days, |_, e| {
            e.policies
                .as_deref()
                .map(|_| ("mfa".to_string(), String::new()))
        });
        let total: i64 = cells(&outcomes)
            .iter()
            .filter(|((p, _), _)| p == "mfa")
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            total,
            expected.values().sum::<i64>(),
            "policies, {name} {zone}"
        );
    }
}

#[tokio::test]
async fn rollups_equal_a_count_of_the_log_after_an_interrupted_run_and_a_rerun() {
    let rows = log();
    let (first, rest) = rows.split_at(4_000);
    let mut ids: Vec<String> = rows.iter().filter_map(|e| e.user_id.clone()).collect();
    ids.sort();
    ids.dedup();
    for (name, store) in stores().await {
        // The accounts (a user is counted only while the account exists).
        let accounts: Vec<NewUser<'_>> = ids
            .iter()
            .map(|id| NewUser {
                id,
                email: id,
                display_name: id,
                password_hash: None,
                is_admin: false,
                now: 0,
            })
            .collect();
        store.create_users(&accounts).await.unwrap();
        store.record_sign_ins(first).await.unwrap();
        store.record_events(&generate::texts(first)).await.unwrap();
        // A run cut short after two batches leaves a consistent watermark.
        let run = insights::roll_up(&store, UNTIL, 500, 2).await.unwrap();
        assert_eq!(
            (run.rows, run.batches, run.caught_up),
            (1_000, 2, false),
            "{name}"
        );
        let mark = store.watermark(SIGN_IN_ROLLUP).await.unwrap();
        assert_eq!(mark.rows_done, 1_000, "{name}");

        // Rows written meanwhile, the older half dated before everything counted so far.
        let (late, newer) = rest.split_at(1_000);
        let mut late: Vec<SignInLogEntry> = late.to_vec();
        for (i, e) in late.iter_mut().enumerate() {
            e.occurred_at = first[i].occurred_at;
            e.id = format!("late-{i:04}");
        }
        store.record_sign_ins(&late).await.unwrap();
        store.record_sign_ins(newer).await.unwrap();
        store.record_events(&generate::texts(rest)).await.unwrap();

        // A second instance that read the same batch as the first, after the first moved
        // the watermark on, writes nothing.
        let stale = CountDelta {
            span: "d".into(),
            bucket: insights::Span::Day.bucket(first[0].occurred_at),
            application: "account".into(),
            dim: insights::DIM_ALL.into(),
            value: String::new(),
            result: "success".into(),
            n: 1_000_000,
        };
        let before_first = gatehouse_core::store::Watermark {
            seq: i64::MIN,
            ..Default::default()
        };
        assert!(!store
            .apply_rollup(
                SIGN_IN_ROLLUP,
                &before_first,
                &mark,
                &RollupWrite {
                    deltas: vec![stale.clone()],
                    ..RollupWrite::default()
                }
            )
            .await
            .unwrap());
        let older = gatehouse_core::store::Watermark {
            seq: mark.seq - 1,
            ..mark.clone()
        };
        assert!(!store
            .apply_rollup(
                SIGN_IN_ROLLUP,
                &older,
                &mark,
                &RollupWrite {
                    deltas: vec![stale],
                    ..RollupWrite::default()
                }
            )
            .await
            .unwrap());

        let run = insights::roll_up(&store, UNTIL, 500, 100).await.unwrap();
        assert!(run.caught_up, "{name}");
        assert_eq!(run.rows, 5_002, "{name}");
        assert_eq!(
            store.watermark(SIGN_IN_ROLLUP).await.unwrap().rows_done,
            6_002,
            "{name}"
        );
        let mut all = first.to_vec();
        all.extend(late);
        all.extend(newer.iter().cloned());
        check(name, &store, &all).await;
        check_texts(name, &store, &generate::texts(&rows)).await;

        // Nothing new: a run reads nothing and changes nothing.
        let again = insights::roll_up(&store, UNTIL, 500, 100).await.unwrap();
        assert_eq!((again.rows, again.caught_up), (0, true), "{name}");
        check(name, &store, &all).await;
    }
}

/// Each account's first and last successful sign-in, counted by hand, of one application or
/// any.
fn spans(rows: &[SignInLogEntry], app: Option<&str>) -> BTreeMap<String, (i64, i64)> {
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for e in rows
        .iter()
        .filter(|e| e.result == "success" && app.is_none_or(|a| e.application == a))
    {
        if let Some(user) = &e.user_id {
            let span = out
                .entry(user.clone())
                .or_insert((e.occurred_at, e.occurred_at));
            span.0 = span.0.min(e.occurred_at);
            span.1 = span.1.max(e.occurred_at);
        }
    }
    out
}

/// Active users per period (from the sketches: exact for so few users), new users per
/// period and inactive users equal a count by hand.
async fn check_users(what: &str, store: &Store, rows: &[SignInLogEntry], tz: &insights::TimeZone) {
    let days = insights::days(UNTIL, 45, tz);
    let months = insights::months(UNTIL, 12, tz);
    for app in [None, Some("shop")] {
        let report = users(store, &days, &months, UNTIL, app).await.unwrap();
        let what = format!("{what} {app:?}");
        for (periods, table) in [(&days, &report.active), (&months, &report.monthly)] {
            let active: Vec<i64> = periods
                .iter()
                .map(|p| {
                    let set: std::collections::BTreeSet<&str> = rows
                        .iter()
                        .filter(|e| {
                            e.result == "success"
                                && p.from <= e.occurred_at
                                && e.occurred_at < p.to
                                && app.is_none_or(|a| e.application == a)
                        })
                        .filter_map(|e| e.user_id.as_deref())
                        .collect();
                    set.len() as i64
                })
                .collect();
            let first = spans(rows, app);
            let new: Vec<i64> = periods
                .iter()
                .map(|p| {
                    first
                        .values()
                        .filter(|(f, _)| p.from <= *f && *f < p.to)
                        .count() as i64
                })
                .collect();
            assert_eq!(table.series, ["Active users", "New users"], "{what}");
            assert_eq!(
                table.cells.iter().map(|c| c[0]).collect::<Vec<_>>(),
                active,
                "active users, {what}"
            );
            assert_eq!(
                table.cells.iter().map(|c| c[1]).collect::<Vec<_>>(),
                new,
                "new users, {what}"
            );
        }
        let seen = spans(rows, app);
        assert_eq!(report.seen, seen.len() as i64, "{what}");
        let inactive: Vec<i64> = [30, 60, 90]
            .iter()
            .map(|d| {
                seen.values()
                    .filter(|(_, last)| *last < UNTIL - d * insights::DAY_MS)
                    .count() as i64
            })
            .collect();
        assert_eq!(
            report
                .inactive
                .cells
                .iter()
                .map(|c| c[0])
                .collect::<Vec<_>>(),
            inactive,
            "inactive users, {what}"
        );
        if app.is_none() {
            assert_eq!(&inactive[..2], [2, 1], "{what}");
        }
    }
}

/// Texts by country and result equal a count of the events.
async fn check_texts(name: &str, store: &Store, events: &[InsightEvent]) {
    let days = insights::days(UNTIL, 45, &insights::TimeZone::UTC);
    let report = mfa(store, &days, None).await.unwrap();
    let mut expected = BTreeMap::new();
    for e in events {
        *expected
            .entry((e.value.clone(), e.result.clone()))
            .or_insert(0) += 1;
    }
    assert!(expected.len() > 4, "{name}");
    assert_eq!(cells(&report.texts), expected, "texts, {name}");
}
