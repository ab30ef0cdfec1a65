//! Usage and insights: the rollup job under its lease, and the dashboards' tables.

use jiff::tz::TimeZone;

use super::{AuthError, Identity};
use crate::insights::{
    self, Period, RollupRun, Table, DAY_MS, DIM_ALL, DIM_BROWSER, DIM_COUNTRY, DIM_METHOD, DIM_OS,
    DIM_POLICY, DIM_REASON,
};
use crate::store::{Watermark, SIGN_IN_ROLLUP};

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

    /// Removes counters older than [`COUNTS_KEPT_MS`], a batch at a time.
    pub(super) async fn prune_insight_counts(&self, now: i64) -> Result<u64, AuthError> {
        let mut removed = 0;
        for _ in 0..super::admin::PRUNE_BATCHES {
            let n = self
                .store
                .prune_insight_counts(now - COUNTS_KEPT_MS, PRUNE_COUNTS_BATCH)
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
    let whole = match (days.first(), days.last()) {
        (Some(first), Some(last)) => vec![Period {
            label: String::new(),
            from: first.from,
            to: last.to,
        }],
        _ => Vec::new(),
    };
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
