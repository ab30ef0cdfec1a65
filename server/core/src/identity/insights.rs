//! Usage and insights: the rollup job under its lease, and the dashboards' tables.

use jiff::tz::TimeZone;

use super::{AuthError, Identity};
use crate::insights::{
    self, Period, RollupRun, Table, ALL_APPLICATIONS, DAY_MS, DIM_ALL, DIM_BROWSER, DIM_COUNTRY,
    DIM_METHOD, DIM_NEW_USERS, DIM_OS, DIM_POLICY, DIM_REASON, DIM_TEXT, SKETCH_ACTIVE,
};
use crate::store::{CountRow, MethodUsers, Store, Watermark, SIGN_IN_ROLLUP};

/// The lease of the rollup job.
pub const ROLLUP_JOB: &str = "insights-rollup";
const ROLLUP_LEASE_MS: i64 = 5 * 60 * 1000;
/// Rows folded per transaction, and transactions per run (so a backlog of a million rows
/// takes a few runs, each short).
pub const ROLLUP_BATCH: i64 = 5_000;
pub const ROLLUP_MAX_BATCHES: u32 = 200;
/// How long the counters are kept: 25 months.
pub const COUNTS_KEPT_MS: i64 = 762 * DAY_MS;
const PRUNE_COUNTS_BATCH: i64 = 5_000;

/// What a dashboard is asked for: one application or all, the admin's time zone, and how
/// many days back from today (over 90: months).
#[derive(Debug, Clone)]
pub struct InsightsQuery {
    pub application: Option<String>,
    pub zone: TimeZone,
    pub days: u32,
}

impl InsightsQuery {
    /// The local days asked for, up to today; over 90 days, the local months instead (the
    /// last 12).
    pub fn periods(&self, now: i64) -> Vec<Period> {
        if self.days > 90 {
            insights::months(now, self.days.div_ceil(31).max(1), &self.zone)
        } else {
            insights::days(now, self.days.max(1), &self.zone)
        }
    }
}

/// The authentications dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthenticationsReport {
    /// Sign-in attempts per local day, by result.
    pub per_day: Table,
    /// Failures per local day, by reason.
    pub reasons: Table,
    /// Over the whole range, by result: per method, operating system, browser and country.
    pub methods: Table,
    pub systems: Table,
    pub browsers: Table,
    pub countries: Table,
    /// How far the counters have read the sign-in log.
    pub counted: Watermark,
}

/// The Conditional Access part of the security dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoliciesReport {
    /// Per policy over the range, by outcome (applied, not applied, and the same for
    /// report-only policies: what they would have done).
    pub outcomes: Table,
    /// Per local day, the sign-ins each policy applied (or would have, in report-only).
    pub applied_per_day: Table,
    pub counted: Watermark,
}

/// The users dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsersReport {
    /// Per period (local day, or month over 90 days): distinct users with a successful
    /// sign-in (estimated, see [`insights::Sketch`]) and users signing in for the first time.
    pub active: Table,
    /// The last 12 local months: the same, per month.
    pub monthly: Table,
    /// Users with no successful sign-in for 30, 60 and 90 days (exact), among `seen`.
    pub inactive: Table,
    /// Users who ever signed in (to the application, or to any).
    pub seen: i64,
    pub counted: Watermark,
}

/// The MFA dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MfaReport {
    /// Accounts with each kind of method (every application's: methods are the account's).
    pub methods: MethodUsers,
    /// Second-factor attempts per period, by method (successes and failures).
    pub per_day: Table,
    /// Second-factor attempts over the range, per method, by result.
    pub by_method: Table,
    /// Text messages over the range, per country calling code, by result (sent, refused by
    /// a cap or the country list, failed at the gateway).
    pub texts: Table,
    pub counted: Watermark,
}

/// The risk-detection part of the security dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RiskReport {
    /// Detections per period, by level.
    pub per_day: Table,
    /// Over the range, per kind of detection, by level.
    pub by_kind: Table,
}

/// The methods of a second factor, as the sign-in log names them.
pub const SECOND_FACTORS: [&str; 3] = ["totp", "sms", "recovery_code"];

impl Identity {
    /// Runs the rollup job if no other instance is running it (its lease in the database).
    /// `None` when another instance holds the lease.
    pub async fn run_rollups(
        &self,
        holder: &str,
        now: i64,
    ) -> Result<Option<RollupRun>, AuthError> {
        if !self
            .store
            .try_lease(ROLLUP_JOB, holder, ROLLUP_LEASE_MS, now)
            .await?
        {
            return Ok(None);
        }
        let run = insights::roll_up(&self.store, now, ROLLUP_BATCH, ROLLUP_MAX_BATCHES).await;
        self.store.release_lease(ROLLUP_JOB, holder, now).await?;
        Ok(Some(run?))
    }

    /// Removes counters and sketches older than [`COUNTS_KEPT_MS`], a batch at a time.
    pub(super) async fn prune_insight_counts(&self, now: i64) -> Result<u64, AuthError> {
        let mut removed = 0;
        for _ in 0..super::admin::PRUNE_BATCHES {
            let before = now - COUNTS_KEPT_MS;
            let n = self
                .store
                .prune_insight_counts(before, PRUNE_COUNTS_BATCH)
                .await?
                + self
                    .store
                    .prune_insight_sketches(before, PRUNE_COUNTS_BATCH)
                    .await?;
            removed += n;
            if n < PRUNE_COUNTS_BATCH as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(removed)
    }

    /// The authentications dashboard for the last `q.days` local days up to `now`.
    pub async fn authentications_report(
        &self,
        q: &InsightsQuery,
        now: i64,
    ) -> Result<AuthenticationsReport, AuthError> {
        authentications(&self.store, &q.periods(now), q.application.as_deref()).await
    }

    /// The users dashboard for the last `q.days` local days up to `now`.
    pub async fn users_report(
        &self,
        q: &InsightsQuery,
        now: i64,
    ) -> Result<UsersReport, AuthError> {
        users(
            &self.store,
            &q.periods(now),
            &insights::months(now, 12, &q.zone),
            now,
            q.application.as_deref(),
        )
        .await
    }

    /// The MFA dashboard for the last `q.days` local days up to `now`.
    pub async fn mfa_report(&self, q: &InsightsQuery, now: i64) -> Result<MfaReport, AuthError> {
        mfa(&self.store, &q.periods(now), q.application.as_deref()).await
    }

    /// Risk detections for the last `q.days` local days up to `now` (every application's:
    /// detections belong to accounts).
    pub async fn risk_report(&self, q: &InsightsQuery, now: i64) -> Result<RiskReport, AuthError> {
        risks(&self.store, &q.periods(now)).await
    }

    /// The Conditional Access results for the last `q.days` local days up to `now`.
    pub async fn policies_report(
        &self,
        q: &InsightsQuery,
        now: i64,
    ) -> Result<PoliciesReport, AuthError> {
        policies(&self.store, &q.periods(now), q.application.as_deref()).await
    }
}

/// The authentications dashboard over `days` (local days, oldest first), of one application
/// or all: what the console, the API and the tests read.
pub async fn authentications(
    store: &crate::store::Store,
    days: &[Period],
    application: Option<&str>,
) -> Result<AuthenticationsReport, AuthError> {
    // The series per period need only the totals and the reasons at the periods' edges;
    // the breakdowns are over the whole range, read as one period (its days inside, hours
    // and quarter hours only at its two ends), so a long range in any zone reads few rows.
    let rows = insights::read(store, days, &[DIM_ALL, DIM_REASON], application).await?;
    let whole = whole(days);
    let spread = insights::read(
        store,
        &whole,
        &[DIM_METHOD, DIM_OS, DIM_BROWSER, DIM_COUNTRY],
        application,
    )
    .await?;
    let of = |dim: &'static str| {
        move |r: &crate::store::CountRow| (r.dim == dim).then(|| r.result.clone())
    };
    let value = |dim: &'static str| {
        move |r: &crate::store::CountRow| {
            (r.dim == dim).then(|| {
                if r.value.is_empty() {
                    "unknown".to_string()
                } else {
                    r.value.clone()
                }
            })
        }
    };
    Ok(AuthenticationsReport {
        per_day: Table::series(days, &rows, of(DIM_ALL)),
        reasons: Table::series(days, &rows, |r| {
            (r.dim == DIM_REASON).then(|| r.value.clone())
        }),
        methods: Table::breakdown(&whole, &spread, value(DIM_METHOD), of(DIM_METHOD)),
        systems: Table::breakdown(&whole, &spread, value(DIM_OS), of(DIM_OS)),
        browsers: Table::breakdown(&whole, &spread, value(DIM_BROWSER), of(DIM_BROWSER)),
        countries: Table::breakdown(&whole, &spread, value(DIM_COUNTRY), of(DIM_COUNTRY)),
        counted: store.watermark(SIGN_IN_ROLLUP).await?,
    })
}

/// The Conditional Access results over `days` (local days or months, oldest first), of one
/// application or all.
pub async fn policies(
    store: &crate::store::Store,
    days: &[Period],
    application: Option<&str>,
) -> Result<PoliciesReport, AuthError> {
    let rows = insights::read(store, days, &[DIM_POLICY], application).await?;
    Ok(PoliciesReport {
        outcomes: Table::breakdown(
            days,
            &rows,
            |r| Some(r.value.clone()),
            |r| Some(r.result.clone()),
        ),
        applied_per_day: Table::series(days, &rows, |r| {
            matches!(r.result.as_str(), "applied" | "report_only_applied").then(|| r.value.clone())
        }),
        counted: store.watermark(SIGN_IN_ROLLUP).await?,
    })
}

/// The whole range of the periods as one period.
fn whole(periods: &[Period]) -> Vec<Period> {
    match (periods.first(), periods.last()) {
        (Some(first), Some(last)) => vec![Period {
            label: String::new(),
            from: first.from,
            to: last.to,
        }],
        _ => Vec::new(),
    }
}

/// A table of active and new users per period.
async fn active_and_new(
    store: &Store,
    periods: &[Period],
    application: &str,
) -> Result<Table, AuthError> {
    let active = insights::distinct(store, periods, SKETCH_ACTIVE, application).await?;
    let rows = insights::read(store, periods, &[DIM_NEW_USERS], Some(application)).await?;
    let new = Table::series(periods, &rows, |_| Some("New users".into()));
    Ok(Table {
        labels: periods.iter().map(|p| p.label.clone()).collect(),
        series: vec!["Active users".into(), "New users".into()],
        cells: active
            .iter()
            .enumerate()
            .map(|(i, a)| {
                vec![
                    *a,
                    new.cells
                        .get(i)
                        .and_then(|c| c.first())
                        .copied()
                        .unwrap_or(0),
                ]
            })
            .collect(),
    })
}

/// The users dashboard over `periods` and the 12 `months`, of one application or all.
pub async fn users(
    store: &Store,
    periods: &[Period],
    months: &[Period],
    now: i64,
    application: Option<&str>,
) -> Result<UsersReport, AuthError> {
    let app = application.unwrap_or(ALL_APPLICATIONS);
    let cutoffs = [30, 60, 90].map(|d| now - d * DAY_MS);
    let (seen, inactive) = store.inactive_users(app, &cutoffs).await?;
    Ok(UsersReport {
        active: active_and_new(store, periods, app).await?,
        monthly: active_and_new(store, months, app).await?,
        inactive: Table::column(
            "Users",
            ["30 days", "60 days", "90 days"]
                .into_iter()
                .map(String::from)
                .zip(inactive)
                .collect(),
        ),
        seen,
        counted: store.watermark(SIGN_IN_ROLLUP).await?,
    })
}

/// The MFA dashboard over `periods`, of one application or all.
pub async fn mfa(
    store: &Store,
    periods: &[Period],
    application: Option<&str>,
) -> Result<MfaReport, AuthError> {
    let second = |r: &CountRow| r.dim == DIM_METHOD && SECOND_FACTORS.contains(&r.value.as_str());
    let rows = insights::read(store, periods, &[DIM_METHOD], application).await?;
    let range = whole(periods);
    let spread = insights::read(store, &range, &[DIM_METHOD, DIM_TEXT], application).await?;
    Ok(MfaReport {
        methods: store.method_users().await?,
        per_day: Table::series(periods, &rows, |r| second(r).then(|| r.value.clone())),
        by_method: Table::breakdown(
            &range,
            &spread,
            |r| second(r).then(|| r.value.clone()),
            |r| second(r).then(|| r.result.clone()),
        ),
        texts: Table::breakdown(
            &range,
            &spread,
            |r| (r.dim == DIM_TEXT).then(|| r.value.clone()),
            |r| (r.dim == DIM_TEXT).then(|| r.result.clone()),
        ),
        counted: store.watermark(SIGN_IN_ROLLUP).await?,
    })
}

/// Risk detections over `periods`: counted from the detections themselves, by quarter hour.
pub async fn risks(store: &Store, periods: &[Period]) -> Result<RiskReport, AuthError> {
    let range = whole(periods);
    let Some(span) = range.first() else {
        return Ok(RiskReport::default());
    };
    let rows: Vec<CountRow> = store
        .risk_detection_counts(span.from, span.to)
        .await?
        .into_iter()
        .map(|(bucket, kind, level, n)| CountRow {
            bucket,
            dim: String::new(),
            value: kind,
            result: level,
            n,
        })
        .collect();
    Ok(RiskReport {
        per_day: Table::series(periods, &insights::bucketed(periods, &rows), |r| {
            Some(r.result.clone())
        }),
        by_kind: Table::breakdown(
            &range,
            &insights::bucketed(&range, &rows),
            |r| Some(r.value.clone()),
            |r| Some(r.result.clone()),
        ),
    })
}
