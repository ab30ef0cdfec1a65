//! Store behaviour, run against SQLite always and against PostgreSQL when
//! `GATEHOUSE_TEST_POSTGRES_URL` is set (each test then uses a fresh database).

// Test helpers fail loudly: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_store::testing::{fresh_postgres_url, fresh_sqlite_url, postgres_url};
use gatehouse_store::*;

async fn stores() -> Vec<Store> {
    let mut out = Vec::new();
    let sqlite = Store::connect(&fresh_sqlite_url(), 8)
        .await
        .expect("sqlite");
    sqlite.migrate().await.expect("migrate sqlite");
    out.push(sqlite);
    match postgres_url() {
        Some(base) => {
            let url = fresh_postgres_url(&base)
                .await
                .expect("create postgres database");
            let pg = Store::connect(&url, 16).await.expect("postgres");
            pg.migrate().await.expect("migrate postgres");
            out.push(pg);
        }
        None => eprintln!("PostgreSQL store tests skipped: GATEHOUSE_TEST_POSTGRES_URL is not set"),
    }
    out
}

fn user<'a>(id: &'a str, email: &'a str) -> NewUser<'a> {
    NewUser {
        id,
        email,
        display_name: "Test User",
        password_hash: Some("$argon2id$fake"),
        is_admin: false,
        now: 1_000,
    }
}

#[tokio::test]
async fn sqlite_runs_with_durable_settings() {
    let store = Store::connect(&fresh_sqlite_url(), 2).await.unwrap();
    assert_eq!(store.sqlite_pragma("journal_mode").await.unwrap(), "wal");
    assert_eq!(store.sqlite_pragma("synchronous").await.unwrap(), "2");
    assert_eq!(store.sqlite_pragma("foreign_keys").await.unwrap(), "1");
    assert!(
        store
            .sqlite_pragma("busy_timeout")
            .await
            .unwrap()
            .parse::<i64>()
            .unwrap()
            >= 5000
    );
    assert!(store.sqlite_pragma("x; DROP TABLE users").await.is_err());
}

#[tokio::test]
async fn migrations_are_idempotent_and_urls_are_checked() {
    for store in stores().await {
        store.migrate().await.expect("second run is a no-op");
    }
    assert!(matches!(
        Store::connect("mysql://x", 1).await,
        Err(StoreError::UnsupportedUrl)
    ));
}

#[tokio::test]
async fn users_are_unique_by_email() {
    for store in stores().await {
        let u = store
            .create_user(&user("u1", "a@example.com"))
            .await
            .unwrap();
        assert_eq!(u.email, "a@example.com");
        assert!(!u.is_admin);
        assert!(matches!(
            store.create_user(&user("u2", "a@example.com")).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.count_users().await.unwrap(), 1);
        let epoch = store
            .set_password("u1", "$argon2id$new", 0, 2_000)
            .await
            .unwrap();
        assert_eq!(epoch, Some(1));
        assert!(
            store
                .find_user_by_email("a@example.com")
                .await
                .unwrap()
                .unwrap()
                .password_hash
                .as_deref()
                == Some("$argon2id$new")
        );
        assert!(
            format!("{u:?}").find("argon2").is_none(),
            "Debug must not show the hash"
        );
    }
}

fn code<'a>(id: &'a str, hash: &'a str, now: i64) -> NewCode<'a> {
    NewCode {
        id,
        purpose: CodePurpose::SignIn,
        email: "c@example.com",
        user_id: None,
        code_hash: hash,
        payload: None,
        now,
        expires_at: now + 600_000,
    }
}

#[tokio::test]
async fn codes_are_single_use_expire_and_die_after_five_failures() {
    for store in stores().await {
        store.create_code(&code("f1", "right", 0)).await.unwrap();
        for left in (1..5).rev() {
            match store
                .try_consume_code("f1", CodePurpose::SignIn, "wrong", 5, 1)
                .await
                .unwrap()
            {
                CodeAttempt::Wrong { attempts_left } => assert_eq!(attempts_left, left),
                other => panic!("expected a wrong attempt, got {other:?}"),
            }
        }
        assert!(matches!(
            store
                .try_consume_code("f1", CodePurpose::SignIn, "wrong", 5, 1)
                .await
                .unwrap(),
            CodeAttempt::Exhausted
        ));
        assert!(matches!(
            store
                .try_consume_code("f1", CodePurpose::SignIn, "right", 5, 1)
                .await
                .unwrap(),
            CodeAttempt::Dead
        ));

        store.create_code(&code("f2", "right", 0)).await.unwrap();
        assert!(
            matches!(
                store
                    .try_consume_code("f2", CodePurpose::SignUpCode, "right", 5, 1)
                    .await
                    .unwrap(),
                CodeAttempt::Dead
            ),
            "a code only works for its own purpose"
        );
        assert!(matches!(
            store
                .try_consume_code("f2", CodePurpose::SignIn, "right", 5, 1)
                .await
                .unwrap(),
            CodeAttempt::Accepted(_)
        ));
        assert!(matches!(
            store
                .try_consume_code("f2", CodePurpose::SignIn, "right", 5, 2)
                .await
                .unwrap(),
            CodeAttempt::Dead
        ));

        store.create_code(&code("f3", "right", 0)).await.unwrap();
        assert!(matches!(
            store
                .try_consume_code("f3", CodePurpose::SignIn, "right", 5, 600_000)
                .await
                .unwrap(),
            CodeAttempt::Dead
        ));
    }
}

#[tokio::test]
async fn resend_keeps_failures_and_waits_a_minute() {
    for store in stores().await {
        store.create_code(&code("r1", "one", 0)).await.unwrap();
        let _ = store
            .try_consume_code("r1", CodePurpose::SignIn, "bad", 5, 1)
            .await
            .unwrap();
        assert!(
            store
                .resend_code("r1", "two", 60_000, 5, 700_000, 30_000)
                .await
                .unwrap()
                .is_none(),
            "too soon"
        );
        let again = store
            .resend_code("r1", "two", 60_000, 5, 700_000, 61_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.failed_attempts, 1);
        assert_eq!(
            again.sends, 1,
            "the first send is recorded by the caller; this is the resend"
        );
        assert!(matches!(
            store
                .try_consume_code("r1", CodePurpose::SignIn, "one", 5, 62_000)
                .await
                .unwrap(),
            CodeAttempt::Wrong { .. }
        ));
        assert!(matches!(
            store
                .try_consume_code("r1", CodePurpose::SignIn, "two", 5, 62_000)
                .await
                .unwrap(),
            CodeAttempt::Accepted(_)
        ));
    }
}

#[tokio::test]
async fn one_send_slot_per_window_whoever_races() {
    for store in stores().await {
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.claim_send_slot("sign_up:x@example.com", &format!("flow{i}"), 300_000, 1_000)
                        .await
                })
            })
            .collect();
        let mut winners = 0;
        let mut holders = std::collections::HashSet::new();
        for t in tasks {
            match t.await.unwrap().unwrap() {
                None => winners += 1,
                Some(holder) => {
                    holders.insert(holder);
                }
            }
        }
        assert_eq!(winners, 1);
        assert_eq!(holders.len(), 1, "every loser sees the one winner");
        assert!(store
            .claim_send_slot("sign_up:x@example.com", "late", 300_000, 200_000)
            .await
            .unwrap()
            .is_some());
        assert!(
            store
                .claim_send_slot("sign_up:x@example.com", "next", 300_000, 301_000)
                .await
                .unwrap()
                .is_none(),
            "after the window"
        );
    }
}

#[tokio::test]
async fn fifty_concurrent_submissions_of_one_code_give_one_success() {
    for store in stores().await {
        store.create_code(&code("race", "right", 0)).await.unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.try_consume_code("race", CodePurpose::SignIn, "right", 5, 10)
                        .await
                })
            })
            .collect();
        let mut accepted = 0;
        for t in tasks {
            if matches!(t.await.unwrap().unwrap(), CodeAttempt::Accepted(_)) {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 1, "{:?}", store.backend());
    }
}

#[tokio::test]
async fn throttle_claims_never_exceed_the_count_under_a_race() {
    for store in stores().await {
        let seen = store
            .throttle_state("password", "x@example.com")
            .await
            .unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(
                    async move { s.throttle_claim("password", "x@example.com", seen, 5).await },
                )
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            if t.await.unwrap().unwrap() {
                won += 1;
            }
        }
        let after = store
            .throttle_state("password", "x@example.com")
            .await
            .unwrap();
        assert_eq!(won, 1, "exactly one claim from the same observed state");
        assert_eq!(after.failures, won);
        store
            .throttle_reset("password", "x@example.com")
            .await
            .unwrap();
        assert_eq!(
            store
                .throttle_state("password", "x@example.com")
                .await
                .unwrap(),
            ThrottleState::default()
        );
        assert_eq!(
            store
                .throttle_record_failure("ip", "1.2.3.4", 9)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .throttle_record_failure("ip", "1.2.3.4", 10)
                .await
                .unwrap(),
            2
        );
    }
}

#[tokio::test]
async fn sessions_follow_expiry_idle_time_and_credential_epoch() {
    for store in stores().await {
        store
            .create_user(&user("su", "s@example.com"))
            .await
            .unwrap();
        let new = |id: &'static str, hash: &'static str| NewSession {
            id,
            token_hash: hash,
            user_id: "su",
            credential_epoch: 0,
            amr: "pwd",
            now: 1_000,
            expires_at: 100_000,
            client_ip: "127.0.0.1",
            user_agent: "test",
            second_factor_id: if id == "s2" { Some("totp-1") } else { None },
        };
        store.create_session(&new("s1", "h1")).await.unwrap();
        store.create_session(&new("s2", "h2")).await.unwrap();
        assert!(store
            .find_live_session("h1", 50_000, 2_000)
            .await
            .unwrap()
            .is_some());
        assert!(
            store
                .find_live_session("h1", 500, 2_000)
                .await
                .unwrap()
                .is_none(),
            "idle too long"
        );
        assert!(
            store
                .find_live_session("h1", 500_000, 100_000)
                .await
                .unwrap()
                .is_none(),
            "expired"
        );
        assert_eq!(store.list_sessions("su", 2_000).await.unwrap().len(), 2);
        let with_factor = store.list_sessions("su", 2_000).await.unwrap();
        assert_eq!(
            with_factor
                .iter()
                .filter(|s| s.second_factor_id.as_deref() == Some("totp-1"))
                .count(),
            1
        );
        let epoch = store
            .set_password("su", "new", 0, 3_000)
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .find_live_session("h2", 50_000, 3_000)
                .await
                .unwrap()
                .is_none(),
            "a password change ends old sessions"
        );
        store.rebind_session("s1", epoch).await.unwrap();
        assert!(store
            .find_live_session("h1", 50_000, 3_000)
            .await
            .unwrap()
            .is_some());
        assert_eq!(
            store.delete_other_sessions("su", Some("s1")).await.unwrap(),
            1
        );
        assert!(store.delete_session_by_token_hash("h1").await.unwrap());
        assert!(store
            .find_live_session("h1", 50_000, 3_000)
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn sign_in_log_and_outbox_round_trip() {
    for store in stores().await {
        let entry = SignInLogEntry {
            id: "l1".into(),
            occurred_at: 5,
            user_id: None,
            email: "who@example.com".into(),
            application: "account".into(),
            client_ip: "192.0.2.1".into(),
            user_agent: "ua".into(),
            method: "password".into(),
            result: "failure".into(),
            failure_reason: Some("invalid_credentials".into()),
            session_id: None,
            policies: None,
            ..Default::default()
        };
        store.record_sign_in(&entry).await.unwrap();
        assert_eq!(
            store
                .sign_ins_for_email("who@example.com", 10)
                .await
                .unwrap(),
            vec![entry]
        );
        let m = OutboxMessage {
            id: "m1".into(),
            created_at: 7,
            channel: "email".into(),
            recipient: "who@example.com".into(),
            subject: "s".into(),
            body: "b".into(),
            sent_at: None,
            last_error: None,
        };
        store.enqueue_message(&m).await.unwrap();
        store.mark_message("m1", Some(8), None).await.unwrap();
        assert_eq!(
            store.messages_for("who@example.com").await.unwrap()[0].sent_at,
            Some(8)
        );
        store.put_setting("branding", "{}", 1).await.unwrap();
        store.put_setting("branding", "{\"a\":1}", 2).await.unwrap();
        assert_eq!(
            store.get_setting("branding").await.unwrap().as_deref(),
            Some("{\"a\":1}")
        );
    }
}

#[tokio::test]
async fn budgets_hand_out_exactly_their_limit_under_a_race_and_refill_after_the_window() {
    for store in stores().await {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.take_budget("send", "bomb@example.com", 6, 900_000, 1_000)
                        .await
                })
            })
            .collect();
        let mut granted = 0;
        for t in tasks {
            if t.await.unwrap().unwrap() {
                granted += 1;
            }
        }
        assert_eq!(granted, 6, "{:?}", store.backend());
        assert!(!store
            .take_budget("send", "bomb@example.com", 6, 900_000, 900_000)
            .await
            .unwrap());
        assert!(
            store
                .take_budget("send", "bomb@example.com", 6, 900_000, 901_001)
                .await
                .unwrap(),
            "a new window"
        );
        assert!(
            store
                .take_budget("send", "other@example.com", 6, 900_000, 1_000)
                .await
                .unwrap(),
            "per subject"
        );
    }
}

#[tokio::test]
async fn a_password_change_decided_on_a_stale_epoch_is_refused() {
    for store in stores().await {
        store
            .create_user(&user("ep", "ep@example.com"))
            .await
            .unwrap();
        assert_eq!(
            store.set_password("ep", "reset-hash", 0, 10).await.unwrap(),
            Some(1)
        );
        assert_eq!(
            store.set_password("ep", "stale-hash", 0, 11).await.unwrap(),
            None,
            "checked before the reset"
        );
        let u = store.find_user("ep").await.unwrap().unwrap();
        assert_eq!(u.password_hash.as_deref(), Some("reset-hash"));
        assert_eq!(u.credential_epoch, 1);
    }
}

#[tokio::test]
async fn housekeeping_removes_what_expired_and_keeps_closed_password_paths() {
    for store in stores().await {
        store
            .create_user(&user("hk", "hk@example.com"))
            .await
            .unwrap();
        let day = 86_400_000;
        store
            .create_session(&NewSession {
                id: "old",
                token_hash: "t-old",
                user_id: "hk",
                credential_epoch: 0,
                amr: "pwd",
                now: 0,
                expires_at: day,
                client_ip: "127.0.0.1",
                user_agent: "ua",
                second_factor_id: None,
            })
            .await
            .unwrap();
        store.create_code(&code("old-code", "h", 0)).await.unwrap();
        store
            .throttle_record_failure("ip", "192.0.2.9", 0)
            .await
            .unwrap();
        for _ in 0..100 {
            store
                .throttle_record_failure("password", "closed@example.com", 0)
                .await
                .unwrap();
        }
        let m = OutboxMessage {
            id: "m-old".into(),
            created_at: 0,
            channel: "email".into(),
            recipient: "hk@example.com".into(),
            subject: "123456 is your code".into(),
            body: "123456".into(),
            sent_at: None,
            last_error: None,
        };
        store.enqueue_message(&m).await.unwrap();
        let removed = store.purge_expired(10 * day, 100).await.unwrap();
        assert_eq!(
            removed, 4,
            "session, code, message and the quiet IP counter"
        );
        assert_eq!(
            store
                .throttle_state("password", "closed@example.com")
                .await
                .unwrap()
                .failures,
            100
        );
        assert!(store
            .messages_for("hk@example.com")
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn delivered_messages_lose_their_content() {
    for store in stores().await {
        let m = OutboxMessage {
            id: "m1".into(),
            created_at: 1,
            channel: "email".into(),
            recipient: "r@example.com".into(),
            subject: "654321 is your code".into(),
            body: "Your code is 654321.".into(),
            sent_at: None,
            last_error: None,
        };
        store.enqueue_message(&m).await.unwrap();
        store.redact_delivered_message("m1", 2).await.unwrap();
        let stored = &store.messages_for("r@example.com").await.unwrap()[0];
        assert_eq!(stored.sent_at, Some(2));
        assert!(!stored.subject.contains("654321") && !stored.body.contains("654321"));
    }
}

#[tokio::test]
async fn a_totp_step_is_accepted_once_and_never_a_lower_one_after() {
    for store in stores().await {
        store
            .create_user(&user("tu", "totp@example.com"))
            .await
            .unwrap();
        store
            .create_totp("t1", "tu", "v1.sealed", 1_000)
            .await
            .unwrap();
        assert!(
            !store.claim_totp_step("t1", 100, 2_000).await.unwrap(),
            "unconfirmed credentials accept nothing"
        );
        assert!(
            !store
                .confirm_totp("t1", "tu", 99, 600_000, 700_000)
                .await
                .unwrap(),
            "enrollment window passed"
        );
        assert!(store
            .confirm_totp("t1", "tu", 99, 600_000, 2_000)
            .await
            .unwrap());
        assert!(
            !store
                .confirm_totp("t1", "tu", 99, 600_000, 2_000)
                .await
                .unwrap(),
            "confirmed once"
        );
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move { s.claim_totp_step("t1", 100, 3_000).await })
            })
            .collect();
        let mut accepted = 0;
        for t in tasks {
            if t.await.unwrap().unwrap() {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 1, "{:?}", store.backend());
        assert!(
            !store.claim_totp_step("t1", 99, 3_000).await.unwrap(),
            "a lower step after a higher one"
        );
        assert!(store.claim_totp_step("t1", 101, 3_000).await.unwrap());
        let listed = store.list_totp("tu").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].last_used_step, 101);
        assert!(!format!("{:?}", listed[0]).contains("sealed"));
        assert!(store.delete_totp("tu", "t1").await.unwrap());
        assert!(store.list_totp("tu").await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn recovery_codes_are_single_use_and_a_new_set_replaces_the_old() {
    for store in stores().await {
        store
            .create_user(&user("rc", "rc@example.com"))
            .await
            .unwrap();
        let set = |tag: &str| {
            (0..10)
                .map(|i| (format!("{tag}-id-{i}"), format!("{tag}-hash-{i}")))
                .collect::<Vec<_>>()
        };
        store
            .replace_recovery_codes("rc", &set("a"), 1)
            .await
            .unwrap();
        assert_eq!(store.unused_recovery_codes("rc").await.unwrap(), 10);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move { s.consume_recovery_code("rc", "a-hash-3", 2).await })
            })
            .collect();
        let mut used = 0;
        for t in tasks {
            if t.await.unwrap().unwrap() {
                used += 1;
            }
        }
        assert_eq!(used, 1, "a code works once, however many race");
        assert_eq!(store.unused_recovery_codes("rc").await.unwrap(), 9);
        store
            .replace_recovery_codes("rc", &set("b"), 3)
            .await
            .unwrap();
        assert!(
            !store
                .consume_recovery_code("rc", "a-hash-4", 4)
                .await
                .unwrap(),
            "the old set is gone"
        );
        assert!(store
            .consume_recovery_code("rc", "b-hash-4", 4)
            .await
            .unwrap());
        assert!(
            !store
                .consume_recovery_code("other", "b-hash-5", 4)
                .await
                .unwrap(),
            "codes belong to their user"
        );
    }
}

#[tokio::test]
async fn passkeys_are_unique_and_their_use_is_recorded_once_per_state() {
    for store in stores().await {
        store
            .create_user(&user("pk1", "pk1@example.com"))
            .await
            .unwrap();
        store
            .create_user(&user("pk2", "pk2@example.com"))
            .await
            .unwrap();
        let record = |id: &str, user_id: &str| PasskeyRecord {
            id: id.into(),
            user_id: user_id.into(),
            credential_id: "Y3JlZA".into(),
            name: "Laptop".into(),
            passkey: r#"{"cred":{"counter":0}}"#.into(),
            created_at: 1,
            last_used_at: None,
        };
        assert!(store.create_passkey(&record("a", "pk1")).await.unwrap());
        assert!(
            !store.create_passkey(&record("b", "pk2")).await.unwrap(),
            "a credential id belongs to one account"
        );
        // Twenty racing updates from the same stored state: exactly one is recorded.
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.record_passkey_use(
                        "a",
                        r#"{"cred":{"counter":0}}"#,
                        &format!(r#"{{"cred":{{"counter":{}}}}}"#, i + 1),
                        5,
                    )
                    .await
                    .unwrap()
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            if t.await.unwrap() {
                won += 1;
            }
        }
        assert_eq!(won, 1);
        let stored = &store.list_passkeys("pk1").await.unwrap()[0];
        assert_eq!(stored.last_used_at, Some(5));
        assert!(!store.rename_passkey("pk2", "a", "Stolen").await.unwrap());
        assert!(!store.delete_passkey("pk2", "a").await.unwrap());
        assert!(store.delete_passkey("pk1", "a").await.unwrap());
    }
}

#[tokio::test]
async fn one_of_many_racing_creations_of_a_code_wins() {
    for store in stores().await {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.create_code_if_absent(&NewCode {
                        id: "race.sms",
                        purpose: CodePurpose::SecondFactorSms,
                        email: "r@example.com",
                        user_id: None,
                        code_hash: "h",
                        payload: None,
                        now: 1,
                        expires_at: 100,
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            if t.await.unwrap() {
                created += 1;
            }
        }
        assert_eq!(created, 1);
    }
}

#[tokio::test]
async fn a_phone_number_is_proven_once_and_unproven_ones_are_replaced() {
    for store in stores().await {
        store
            .create_user(&user("ph", "ph@example.com"))
            .await
            .unwrap();
        let phone = |id: &str, number: &str| PhoneNumber {
            id: id.into(),
            user_id: "ph".into(),
            number: number.into(),
            created_at: 1,
            verified_at: None,
            last_used_at: None,
        };
        store
            .create_phone(&phone("p1", "+14155550100"))
            .await
            .unwrap();
        store
            .create_phone(&phone("p2", "+14155550101"))
            .await
            .unwrap();
        let phones = store.list_phones("ph").await.unwrap();
        assert_eq!(
            phones.len(),
            1,
            "a new unproven number replaces the old one"
        );
        assert!(store.verify_phone("ph", "p2", 2).await.unwrap());
        assert!(!store.verify_phone("ph", "p2", 3).await.unwrap());
        assert_eq!(
            store.list_phones("ph").await.unwrap()[0].verified_at,
            Some(2)
        );
        assert_eq!(store.delete_second_factors("ph").await.unwrap(), 1);
        assert!(store.list_phones("ph").await.unwrap().is_empty());
    }
}

fn identity(id: &str, user_id: &str, issuer: &str, subject: &str) -> ExternalIdentity {
    ExternalIdentity {
        id: id.into(),
        user_id: user_id.into(),
        provider_id: "idp".into(),
        issuer: issuer.into(),
        subject: subject.into(),
        email: None,
        created_at: 1_000,
        last_used_at: None,
    }
}

#[tokio::test]
async fn external_identities_are_unique_and_accounts_come_with_theirs_or_not_at_all() {
    for store in stores().await {
        // A pending sign-up for the address ends when the account is made from a provider.
        let mut pending = code("pending", "h", 1_000);
        pending.purpose = CodePurpose::SignUpCode;
        store.create_code(&pending).await.unwrap();
        store
            .create_code(&code("other-flow", "h", 1_000))
            .await
            .unwrap();
        let pending_email = store.find_code("pending").await.unwrap().unwrap().email;
        let u = store
            .create_user_with_identity(
                &user("u1", &pending_email),
                &identity("i1", "u1", "https://a", "1"),
            )
            .await
            .unwrap();
        assert_eq!(u.email, pending_email);
        assert!(store
            .find_code("pending")
            .await
            .unwrap()
            .unwrap()
            .consumed_at
            .is_some());
        assert!(store
            .find_code("other-flow")
            .await
            .unwrap()
            .unwrap()
            .consumed_at
            .is_none());
        // The same (issuer, subject) again: nothing is stored, not even the account.
        let err = store
            .create_user_with_identity(
                &user("u2", "b@example.com"),
                &identity("i2", "u2", "https://a", "1"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict));
        assert!(store.find_user("u2").await.unwrap().is_none());
        // The same email again: no identity without its account.
        let err = store
            .create_user_with_identity(
                &user("u3", &pending_email),
                &identity("i3", "u3", "https://a", "3"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict));
        assert!(store
            .find_external_identity("https://a", "3")
            .await
            .unwrap()
            .is_none());
        // The same subject at another issuer is another identity.
        store
            .create_user(&user("u4", "d@example.com"))
            .await
            .unwrap();
        store
            .link_external_identity(&identity("i4", "u4", "https://b", "1"))
            .await
            .unwrap();
        assert!(matches!(
            store
                .link_external_identity(&identity("i5", "u4", "https://b", "1"))
                .await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(
            store
                .find_external_identity("https://b", "1")
                .await
                .unwrap()
                .unwrap()
                .user_id,
            "u4"
        );
        assert_eq!(
            store
                .find_external_identity("https://a", "1")
                .await
                .unwrap()
                .unwrap()
                .user_id,
            "u1"
        );
        store.touch_external_identity("i4", 5_000).await.unwrap();
        assert_eq!(
            store.list_external_identities("u4").await.unwrap()[0].last_used_at,
            Some(5_000)
        );
        // Only the owner unlinks.
        assert!(!store.unlink_external_identity("u1", "i4").await.unwrap());
        assert!(store.unlink_external_identity("u4", "i4").await.unwrap());
        assert!(store
            .list_external_identities("u4")
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn providers_are_kept_in_order_and_replaced_by_id() {
    for store in stores().await {
        let p = |id: &str, position: i64| ProviderRecord {
            id: id.into(),
            kind: "oidc".into(),
            display_name: id.to_uppercase(),
            settings: "{}".into(),
            sealed_secret: Some("sealed".into()),
            enabled: true,
            position,
            created_at: 1,
            updated_at: 1,
        };
        store.put_provider(&p("b", 1)).await.unwrap();
        store.put_provider(&p("a", 2)).await.unwrap();
        let ids: Vec<String> = store
            .list_providers()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids, ["b", "a"]);
        // Replacing keeps the position; moving changes it.
        let mut changed = p("b", 9);
        changed.display_name = "Renamed".into();
        store.put_provider(&changed).await.unwrap();
        let b = store.find_provider("b").await.unwrap().unwrap();
        assert_eq!((b.display_name.as_str(), b.position), ("Renamed", 1));
        assert!(store.set_provider_position("b", 5, 2).await.unwrap());
        assert!(store.set_provider_enabled("a", false, 2).await.unwrap());
        let list = store.list_providers().await.unwrap();
        assert_eq!(list[0].id, "a");
        assert!(!list[0].enabled);
        assert!(!format!("{:?}", list[0]).contains("sealed\""));
        assert!(store.delete_provider("a").await.unwrap());
        assert!(!store.delete_provider("a").await.unwrap());
        assert!(!store.set_provider_enabled("nope", true, 2).await.unwrap());
    }
}

#[tokio::test]
async fn console_searches_and_log_filters_agree_on_both_backends() {
    for store in stores().await {
        store
            .create_user(&user("u1", "ada@example.com"))
            .await
            .unwrap();
        store
            .create_user(&user("u2", "grace_100%@example.com"))
            .await
            .unwrap();
        let (found, total) = store.search_users("ADA", 0, 10).await.unwrap();
        assert_eq!((found.len(), total), (1, 1));
        assert_eq!(store.search_users("_100%", 0, 10).await.unwrap().1, 1);
        assert_eq!(
            store.search_users("%", 0, 10).await.unwrap().1,
            1,
            "% is literal"
        );
        let (page, total) = store.search_users("", 0, 1).await.unwrap();
        assert_eq!((page.len(), total), (1, 2), "one per page, two in all");
        for (i, (result, app)) in [
            ("success", "account"),
            ("failure", "shop"),
            ("failure", "account"),
        ]
        .into_iter()
        .enumerate()
        {
            store
                .record_sign_in(&SignInLogEntry {
                    id: format!("l{i}"),
                    occurred_at: 100 + i as i64,
                    user_id: Some("u1".into()),
                    email: "ada@example.com".into(),
                    application: app.into(),
                    client_ip: "192.0.2.1".into(),
                    user_agent: "ua".into(),
                    method: "password".into(),
                    result: result.into(),
                    failure_reason: None,
                    session_id: None,
                    policies: None,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        let filter = SignInFilter {
            result: Some("failure".into()),
            email: Some("ADA@".into()),
            from: Some(101),
            ..SignInFilter::default()
        };
        let (rows, total) = store.filter_sign_ins(&filter, 0, 1).await.unwrap();
        assert_eq!(total, 2);
        assert_eq!(rows[0].id, "l2", "newest first, one per page");
        let app_only = SignInFilter {
            application: Some("shop".into()),
            to: Some(102),
            ..SignInFilter::default()
        };
        assert_eq!(store.filter_sign_ins(&app_only, 0, 10).await.unwrap().1, 1);
        for (i, action) in ["admin.user.disabled", "admin.app.deleted", "mfa.reset"]
            .into_iter()
            .enumerate()
        {
            store
                .record_audit(&AuditEntry {
                    id: format!("a{i}"),
                    occurred_at: 10 + i as i64,
                    actor_user_id: Some("u1".into()),
                    subject_user_id: Some("u2".into()),
                    action: action.into(),
                    detail: String::new(),
                    client_ip: "192.0.2.1".into(),
                })
                .await
                .unwrap();
        }
        let admin_actions = AuditFilter {
            action: Some("admin.".into()),
            actor_user_id: Some("u1".into()),
            ..AuditFilter::default()
        };
        let (rows, total) = store.filter_audit(&admin_actions, 0, 10).await.unwrap();
        assert_eq!(total, 2);
        assert_eq!(rows[0].action, "admin.app.deleted");
    }
}

#[tokio::test]
async fn email_changes_respect_other_accounts_and_reserved_addresses() {
    for store in stores().await {
        store
            .create_user(&user("m1", "old@example.com"))
            .await
            .unwrap();
        store
            .create_user(&user("m2", "taken@example.com"))
            .await
            .unwrap();
        assert!(matches!(
            store
                .change_email("m1", "old@example.com", "taken@example.com", 2_000)
                .await,
            Err(StoreError::Conflict)
        ));
        assert!(
            !store
                .change_email("m1", "stale@example.com", "new@example.com", 2_000)
                .await
                .unwrap(),
            "a change decided on a stale address is refused"
        );
        assert!(store
            .change_email("m1", "old@example.com", "new@example.com", 2_000)
            .await
            .unwrap());
        // The old address is reserved while its undo link lives.
        store
            .create_code(&NewCode {
                id: "undo-1",
                purpose: CodePurpose::EmailChangeUndo,
                email: "old@example.com",
                user_id: Some("m1"),
                code_hash: "",
                payload: None,
                now: 2_000,
                expires_at: 10_000,
            })
            .await
            .unwrap();
        assert!(store
            .email_reserved("old@example.com", 3_000)
            .await
            .unwrap());
        let squatter = NewUser {
            now: 3_000,
            ..user("m3", "old@example.com")
        };
        assert!(matches!(
            store.create_user(&squatter).await,
            Err(StoreError::Conflict)
        ));
        assert!(!store
            .email_reserved("old@example.com", 10_000)
            .await
            .unwrap());
        let later = NewUser {
            now: 10_001,
            ..user("m3", "old@example.com")
        };
        store.create_user(&later).await.unwrap();
        assert!(matches!(
            store.restore_email("m1", "old@example.com", 10_002).await,
            Err(StoreError::Conflict)
        ));
        assert!(store
            .restore_email("m1", "back@example.com", 10_002)
            .await
            .unwrap());
        assert_eq!(
            store.find_user("m1").await.unwrap().unwrap().email,
            "back@example.com"
        );
    }
}

#[tokio::test]
async fn deleting_an_account_keeps_only_anonymous_log_rows() {
    for store in stores().await {
        store
            .create_user(&user("d1", "gone@example.com"))
            .await
            .unwrap();
        store
            .create_user(&user("d2", "stays@example.com"))
            .await
            .unwrap();
        for (id, uid, email) in [
            ("l1", "d1", "gone@example.com"),
            ("l2", "d2", "stays@example.com"),
        ] {
            store
                .record_sign_in(&SignInLogEntry {
                    id: id.into(),
                    occurred_at: 1_500,
                    user_id: Some(uid.into()),
                    email: email.into(),
                    application: "account".into(),
                    client_ip: "203.0.113.9".into(),
                    user_agent: "Firefox".into(),
                    method: "password".into(),
                    result: "success".into(),
                    failure_reason: None,
                    session_id: None,
                    policies: None,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        store
            .enqueue_message(&OutboxMessage {
                id: "o1".into(),
                created_at: 1_500,
                channel: "email".into(),
                recipient: "gone@example.com".into(),
                subject: "hello".into(),
                body: "private".into(),
                sent_at: None,
                last_error: None,
            })
            .await
            .unwrap();
        store
            .throttle_record_failure("password", "gone@example.com", 1_600)
            .await
            .unwrap();
        assert!(store.delete_account("d1").await.unwrap());
        assert!(!store.delete_account("d1").await.unwrap(), "only once");
        assert!(store.find_user("d1").await.unwrap().is_none());
        assert!(store
            .messages_for("gone@example.com")
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .throttle_state("password", "gone@example.com")
                .await
                .unwrap()
                .failures,
            0
        );
        let rows = store.recent_sign_ins(10).await.unwrap();
        let gone = rows.iter().find(|r| r.id == "l1").unwrap();
        assert_eq!(gone.user_id.as_deref(), Some("d1"));
        assert_eq!(
            (
                gone.email.as_str(),
                gone.client_ip.as_str(),
                gone.user_agent.as_str()
            ),
            ("", "", "")
        );
        assert_eq!(
            (gone.method.as_str(), gone.result.as_str()),
            ("password", "success")
        );
        let kept = rows.iter().find(|r| r.id == "l2").unwrap();
        assert_eq!(
            kept.email, "stays@example.com",
            "other accounts keep theirs"
        );
        assert!(store.find_user("d2").await.unwrap().is_some());
    }
}

#[tokio::test]
async fn the_last_time_of_an_audited_action_is_read_per_account() {
    for store in stores().await {
        store
            .create_user(&user("g1", "grant@example.com"))
            .await
            .unwrap();
        assert_eq!(
            store.last_audit_at("g1", "password.reset").await.unwrap(),
            None
        );
        for at in [2_000, 5_000] {
            store
                .record_audit(&AuditEntry {
                    id: format!("a{at}"),
                    occurred_at: at,
                    actor_user_id: Some("g1".into()),
                    subject_user_id: Some("g1".into()),
                    action: "password.reset".into(),
                    detail: String::new(),
                    client_ip: String::new(),
                })
                .await
                .unwrap();
        }
        assert_eq!(
            store.last_audit_at("g1", "password.reset").await.unwrap(),
            Some(5_000)
        );
    }
}

#[tokio::test]
async fn policies_keep_every_version_and_every_change_moves_the_counter() {
    for store in stores().await {
        assert_eq!(store.ca_version().await.unwrap(), 0);
        assert!(store.list_policies().await.unwrap().is_empty());
        let v1 = store
            .put_policy("mfa-shop", "MFA for the shop", "on", "{\"v\":1}", None, 10)
            .await
            .unwrap();
        assert_eq!(v1, 1);
        assert_eq!(store.ca_version().await.unwrap(), 1);
        let v2 = store
            .put_policy(
                "mfa-shop",
                "MFA for the shop",
                "report-only",
                "{\"v\":2}",
                Some("admin"),
                20,
            )
            .await
            .unwrap();
        assert_eq!(v2, 2);
        let p = store.find_policy("mfa-shop").await.unwrap().unwrap();
        assert_eq!(
            (p.state.as_str(), p.version, p.document.as_str()),
            ("report-only", 2, "{\"v\":2}")
        );
        assert_eq!((p.created_at, p.updated_at), (10, 20));
        assert_eq!(p.created_by, None, "the creator stays the first one");
        assert_eq!(p.updated_by.as_deref(), Some("admin"));
        store
            .put_policy("block-tor", "Block", "on", "{}", None, 30)
            .await
            .unwrap();
        let ids: Vec<String> = store
            .list_policies()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(
            ids,
            ["mfa-shop", "block-tor"],
            "in the order they were made"
        );
        assert!(store
            .delete_policy("mfa-shop", Some("admin"), 40)
            .await
            .unwrap());
        assert!(!store.delete_policy("mfa-shop", None, 41).await.unwrap());
        let history = store.policy_history("mfa-shop").await.unwrap();
        let versions: Vec<(i64, &str)> = history
            .iter()
            .map(|v| (v.version, v.document.as_str()))
            .collect();
        assert_eq!(versions, [(3, ""), (2, "{\"v\":2}"), (1, "{\"v\":1}")]);
        assert_eq!(store.ca_version().await.unwrap(), 4);
        // A policy made again after its deletion goes on from its history.
        let again = store
            .put_policy("mfa-shop", "MFA again", "off", "{\"v\":4}", None, 50)
            .await
            .unwrap();
        assert_eq!(again, 4);
    }
}

#[tokio::test]
async fn groups_hold_accounts_once_and_go_with_their_members() {
    for store in stores().await {
        store
            .create_user(&user("u1", "one@example.com"))
            .await
            .unwrap();
        store
            .create_user(&user("u2", "two@example.com"))
            .await
            .unwrap();
        store.create_group("sales", "Sales", "", 1).await.unwrap();
        assert!(matches!(
            store.create_group("sales", "Other", "", 2).await,
            Err(StoreError::Conflict)
        ));
        assert!(matches!(
            store.create_group("sales-2", "Sales", "", 2).await,
            Err(StoreError::Conflict)
        ));
        let before = store.ca_version().await.unwrap();
        assert!(store.add_group_member("sales", "u1", 3).await.unwrap());
        assert!(
            !store.add_group_member("sales", "u1", 4).await.unwrap(),
            "once"
        );
        assert!(store.ca_version().await.unwrap() > before);
        assert!(matches!(
            store.add_group_member("nobody", "u1", 5).await,
            Err(StoreError::Conflict)
        ));
        assert!(matches!(
            store.add_group_member("sales", "ghost", 5).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.groups_of_user("u1").await.unwrap(), ["sales"]);
        assert!(store.groups_of_user("u2").await.unwrap().is_empty());
        let members: Vec<String> = store
            .group_members("sales")
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.email)
            .collect();
        assert_eq!(members, ["one@example.com"]);
        let groups = store.list_groups().await.unwrap();
        assert_eq!((groups[0].id.as_str(), groups[0].members), ("sales", 1));
        assert!(store.remove_group_member("sales", "u1", 6).await.unwrap());
        assert!(!store.remove_group_member("sales", "u1", 7).await.unwrap());
        store.add_group_member("sales", "u2", 8).await.unwrap();
        assert!(store.delete_group("sales", 9).await.unwrap());
        assert!(store.groups_of_user("u2").await.unwrap().is_empty());
        assert!(!store.delete_group("sales", 10).await.unwrap());
    }
}

#[tokio::test]
async fn named_locations_are_replaced_by_id() {
    for store in stores().await {
        store
            .put_location("office", "Office", "{\"a\":1}", 1)
            .await
            .unwrap();
        store
            .put_location("office", "Head office", "{\"a\":2}", 2)
            .await
            .unwrap();
        let all = store.list_locations().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].name.as_str(), all[0].document.as_str()),
            ("Head office", "{\"a\":2}")
        );
        assert!(store.delete_location("office", 3).await.unwrap());
        assert!(!store.delete_location("office", 4).await.unwrap());
        assert_eq!(
            store.ca_version().await.unwrap(),
            3,
            "a delete that removed nothing changed nothing"
        );
    }
}

#[tokio::test]
async fn risk_reports_page_by_cursor_without_skipping_or_repeating_on_both_backends() {
    for store in stores().await {
        for (id, email) in [
            ("u1", "ada@example.com"),
            ("u2", "bob@example.com"),
            ("u3", "cy@example.com"),
        ] {
            store.create_user(&user(id, email)).await.unwrap();
        }
        // Five detections, two of them at the same instant, so the id breaks the tie.
        let times = [
            ("d1", "u1", 100),
            ("d2", "u2", 200),
            ("d3", "u3", 200),
            ("d4", "u1", 300),
            ("d5", "u2", 400),
        ];
        for (id, user_id, at) in times {
            let d = DetectionRecord {
                id: id.into(),
                user_id: user_id.into(),
                sign_in_id: None,
                kind: "anonymous-ip".into(),
                level: "medium".into(),
                timing: "real-time".into(),
                detected_at: at,
                state: "at-risk".into(),
                evidence: "{}".into(),
                summary: "test".into(),
                updated_at: at,
            };
            store
                .record_detection(&d, &format!("c-{id}"), None, "test")
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut filter = DetectionFilter::default();
        loop {
            let (page, _) = store.filter_detections(&filter, 0, 2).await.unwrap();
            if page.is_empty() {
                break;
            }
            let last = page.last().unwrap();
            filter.after = Some((last.detected_at, last.id.clone()));
            seen.extend(page.into_iter().map(|d| d.id));
        }
        assert_eq!(
            seen,
            ["d5", "d4", "d2", "d3", "d1"],
            "newest first, ties by id"
        );
        // A detection arriving between pages does not shift the next page.
        let (first, _) = store
            .filter_detections(&DetectionFilter::default(), 0, 2)
            .await
            .unwrap();
        let newer = DetectionRecord {
            id: "d6".into(),
            detected_at: 500,
            ..store.find_detection("d1").await.unwrap().unwrap()
        };
        store
            .record_detection(&newer, "c-d6", None, "test")
            .await
            .unwrap();
        let last = first.last().unwrap();
        let next = DetectionFilter {
            after: Some((last.detected_at, last.id.clone())),
            ..Default::default()
        };
        let (second, _) = store.filter_detections(&next, 0, 2).await.unwrap();
        assert_eq!(
            second.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["d2", "d3"]
        );

        // Risky users: last detections u1 500 (d6), u2 400, u3 200.
        let mut users = Vec::new();
        let mut filter = RiskyUserFilter::default();
        loop {
            let (page, total) = store.risky_users(&filter, 0, 1).await.unwrap();
            let Some(last) = page.last() else { break };
            assert_eq!(
                total as usize,
                3 - users.len(),
                "the total counts what is left"
            );
            filter.after = Some((last.last_detected_at, last.user_id.clone()));
            users.extend(page.into_iter().map(|u| u.user_id));
        }
        assert_eq!(users, ["u1", "u2", "u3"]);
        let filtered = RiskyUserFilter {
            level: Some("medium".into()),
            after: Some((400, "u2".into())),
            ..Default::default()
        };
        let (rest, _) = store.risky_users(&filtered, 0, 10).await.unwrap();
        assert_eq!(
            rest.iter().map(|u| u.user_id.as_str()).collect::<Vec<_>>(),
            ["u3"]
        );
    }
}

#[tokio::test]
async fn one_holder_at_a_time_takes_a_job_lease_and_a_lapsed_one_passes_on_both_backends() {
    for store in stores().await {
        assert!(store.try_lease("job", "a", 1_000, 100).await.unwrap());
        assert!(
            !store.try_lease("job", "b", 1_000, 200).await.unwrap(),
            "held by a"
        );
        assert!(
            store.try_lease("job", "a", 1_000, 300).await.unwrap(),
            "a renews"
        );
        assert!(
            !store.try_lease("job", "b", 1_000, 1_299).await.unwrap(),
            "renewed to 1,300"
        );
        assert!(
            store.try_lease("job", "b", 1_000, 1_300).await.unwrap(),
            "a lapsed: b takes it"
        );
        assert!(
            !store.release_lease("job", "a", 1_400).await.unwrap(),
            "a no longer holds it"
        );
        assert_eq!(store.job_finished_at("job").await.unwrap(), None);
        assert!(store.release_lease("job", "b", 1_500).await.unwrap());
        assert_eq!(store.job_finished_at("job").await.unwrap(), Some(1_500));
        assert!(
            store.try_lease("job", "a", 1_000, 1_500).await.unwrap(),
            "released: free"
        );
        assert!(
            store.try_lease("other", "b", 1_000, 1_500).await.unwrap(),
            "leases are per job"
        );
        // Racing instances: exactly one wins.
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .try_lease("race", &format!("h{i}"), 60_000, 10)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut won = 0;
        for r in racers {
            won += usize::from(r.await.unwrap());
        }
        assert_eq!(won, 1);
    }
}

#[tokio::test]
async fn password_sources_count_attempts_wrong_passwords_and_accounts_on_both_backends() {
    for store in stores().await {
        store
            .create_user(&user("u1", "ada@example.com"))
            .await
            .unwrap();
        let mut n = 0;
        let mut log = |ip: &str, email: &str, result: &str, reason: Option<&str>, at: i64| {
            n += 1;
            SignInLogEntry {
                id: format!("s{n}"),
                occurred_at: at,
                user_id: (email == "ada@example.com").then(|| "u1".to_string()),
                email: email.into(),
                application: "account".into(),
                client_ip: ip.into(),
                user_agent: "ua".into(),
                method: "password".into(),
                result: result.into(),
                failure_reason: reason.map(str::to_string),
                ..Default::default()
            }
        };
        let mut rows = Vec::new();
        for i in 0..4 {
            rows.push(log(
                "203.0.113.9",
                &format!("USER{i}@example.com"),
                "failure",
                Some("invalid_credentials"),
                100 + i,
            ));
        }
        rows.push(log(
            "203.0.113.9",
            "user0@example.com",
            "blocked",
            Some("throttled"),
            110,
        ));
        rows.push(log(
            "203.0.113.9",
            "ada@example.com",
            "interrupted",
            Some("second_factor_required"),
            120,
        ));
        rows.push(log("203.0.113.9", "ada@example.com", "success", None, 130));
        rows.push(log("198.51.100.1", "ada@example.com", "success", None, 140));
        rows.push(log(
            "203.0.113.9",
            "late@example.com",
            "failure",
            Some("invalid_credentials"),
            10_000,
        ));
        for r in &rows {
            store.record_sign_in(r).await.unwrap();
        }
        let sources = store.password_sources(0, 1_000, 2).await.unwrap();
        assert_eq!(
            sources,
            [SourceActivity {
                client_ip: "203.0.113.9".into(),
                attempts: 7,
                failures: 5,
                failed_accounts: 4,
                first_at: 100,
                last_at: 130,
            }],
            "emails are one account in any case; the other address is under the minimum"
        );
        let proven = store
            .proven_passwords_from("203.0.113.9", 0, 1_000)
            .await
            .unwrap();
        assert_eq!(
            proven.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["s6", "s7"]
        );
        assert!(!store
            .has_detection_of_sign_in("s6", "password-spray")
            .await
            .unwrap());
    }
}

#[tokio::test]
async fn emails_by_id_reads_many_accounts_at_once_and_skips_gone_ones_on_both_backends() {
    for store in stores().await {
        let mut ids = Vec::new();
        for i in 0..620 {
            let id = format!("u{i}");
            let email = format!("person{i}@example.com");
            store.create_user(&user(&id, &email)).await.unwrap();
            ids.push(id);
        }
        ids.push("gone".into());
        let found = store.emails_by_id(&ids).await.unwrap();
        assert_eq!(found.len(), 620, "across two batches, without the gone id");
        assert_eq!(found["u619"], "person619@example.com");
        assert!(store.emails_by_id(&[]).await.unwrap().is_empty());
    }
}

fn endpoint(id: &str, types: &str, created_at: i64) -> WebhookEndpointRecord {
    WebhookEndpointRecord {
        id: id.into(),
        url: format!("https://{id}.example.com/hook"),
        description: String::new(),
        event_types: types.into(),
        secret_sealed: "sealed".into(),
        previous_secret_sealed: None,
        previous_secret_until: None,
        enabled: true,
        created_at,
        updated_at: created_at,
    }
}

#[tokio::test]
async fn webhook_events_are_queued_with_the_write_that_makes_them_on_both_backends() {
    for store in stores().await {
        store
            .create_user(&user("u1", "ada@example.com"))
            .await
            .unwrap();
        store
            .create_webhook_endpoint(&endpoint(
                "all",
                "risk_detection.created risk_detection.state_changed risky_sign_in.created",
                1,
            ))
            .await
            .unwrap();
        store
            .create_webhook_endpoint(&endpoint("signins", "risky_sign_in.created", 2))
            .await
            .unwrap();
        let mut off = endpoint("off", "risk_detection.created", 3);
        off.enabled = false;
        store.create_webhook_endpoint(&off).await.unwrap();
        assert!(!store.webhook_delivery_due(i64::MAX).await.unwrap());

        // A detection: one event for the subscribed, enabled endpoint, named by its change.
        let d = DetectionRecord {
            id: "d1".into(),
            user_id: "u1".into(),
            sign_in_id: None,
            kind: "brute-force".into(),
            level: "high".into(),
            timing: "real-time".into(),
            detected_at: 100,
            state: "at-risk".into(),
            evidence: "{}".into(),
            summary: "test".into(),
            updated_at: 100,
        };
        store
            .record_detection(&d, "c1", None, "detected at sign-in")
            .await
            .unwrap();
        let due = store.due_webhook_deliveries(100, 10).await.unwrap();
        assert_eq!(
            due.iter()
                .map(|d| (
                    d.endpoint_id.as_str(),
                    d.event_id.as_str(),
                    d.event_type.as_str()
                ))
                .collect::<Vec<_>>(),
            [("all", "c1", "risk_detection.created")]
        );
        assert!(store
            .due_webhook_deliveries(99, 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .find_risk_state_change("c1")
                .await
                .unwrap()
                .unwrap()
                .state,
            "at-risk"
        );

        // Its change of state: one more, named by the new change.
        let mut n = 0;
        let mut ids = || {
            n += 1;
            format!("c-next-{n}")
        };
        assert_eq!(
            store
                .close_open_risk("u1", "dismissed", None, "dismissed", 200, &mut ids)
                .await
                .unwrap(),
            1
        );
        let due = store.due_webhook_deliveries(200, 10).await.unwrap();
        assert_eq!(due.len(), 2);
        assert_eq!(
            (due[1].event_id.as_str(), due[1].event_type.as_str()),
            ("c-next-1", "risk_detection.state_changed")
        );

        // A sign-in: only a risky one is an event, for both endpoints that take sign-ins.
        let mut row = SignInLogEntry {
            id: "s-plain".into(),
            occurred_at: 300,
            user_id: Some("u1".into()),
            email: "ada@example.com".into(),
            application: "account".into(),
            client_ip: "192.0.2.1".into(),
            user_agent: "ua".into(),
            method: "password".into(),
            result: "success".into(),
            risk_level: Some("none".into()),
            ..Default::default()
        };
        store.record_sign_in(&row).await.unwrap();
        row.id = "s-risky".into();
        row.risk_level = Some("medium".into());
        store.record_sign_in(&row).await.unwrap();
        let due = store.due_webhook_deliveries(300, 10).await.unwrap();
        let sign_ins: Vec<(&str, &str)> = due
            .iter()
            .filter(|d| d.event_type == "risky_sign_in.created")
            .map(|d| (d.endpoint_id.as_str(), d.event_id.as_str()))
            .collect();
        assert_eq!(sign_ins, [("all", "s-risky"), ("signins", "s-risky")]);

        // An attempt is recorded once: a second record of the same attempt changes nothing.
        assert!(store
            .record_webhook_attempt("all", "c1", 0, false, Some(1_000), Some(500), None, 400)
            .await
            .unwrap());
        assert!(!store
            .record_webhook_attempt("all", "c1", 0, true, None, Some(200), None, 400)
            .await
            .unwrap());
        assert!(!store
            .due_webhook_deliveries(999, 10)
            .await
            .unwrap()
            .iter()
            .any(|d| d.event_id == "c1"));
        assert!(store
            .record_webhook_attempt("all", "c1", 1, true, None, Some(204), None, 1_000)
            .await
            .unwrap());
        let recent = store.recent_webhook_deliveries("all", 10).await.unwrap();
        let c1 = recent.iter().find(|d| d.event_id == "c1").unwrap();
        assert_eq!(
            (c1.attempts, c1.delivered_at, c1.last_status),
            (2, Some(1_000), Some(204))
        );

        // Disabled endpoints get nothing new and nothing is due for them; deleting one drops
        // its deliveries with it.
        assert!(store
            .set_webhook_enabled("signins", false, 500)
            .await
            .unwrap());
        assert!(!store
            .due_webhook_deliveries(i64::MAX, 10)
            .await
            .unwrap()
            .iter()
            .any(|d| d.endpoint_id == "signins"));
        assert!(store.delete_webhook_endpoint("signins").await.unwrap());
        assert!(!store.delete_webhook_endpoint("signins").await.unwrap());
        assert!(store
            .recent_webhook_deliveries("signins", 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .webhook_endpoints()
                .await
                .unwrap()
                .iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>(),
            ["all", "off"]
        );

        // Rotation keeps the previous secret with its end.
        assert!(store
            .rotate_webhook_secret("all", "sealed-2", 9_000, 600)
            .await
            .unwrap());
        let all = store.find_webhook_endpoint("all").await.unwrap().unwrap();
        assert_eq!(
            (
                all.secret_sealed.as_str(),
                all.previous_secret_sealed.as_deref(),
                all.previous_secret_until
            ),
            ("sealed-2", Some("sealed"), Some(9_000))
        );
        assert!(
            !format!("{all:?}").contains("sealed-2"),
            "Debug leaves secrets out"
        );
    }
}

#[tokio::test]
async fn a_successful_sign_in_updates_the_profile_in_its_transaction_on_both_backends() {
    for store in stores().await {
        store
            .create_user(&user("u1", "ada@example.com"))
            .await
            .unwrap();
        let row = |id: &str, at: i64| SignInLogEntry {
            id: id.into(),
            occurred_at: at,
            user_id: Some("u1".into()),
            email: "ada@example.com".into(),
            application: "account".into(),
            client_ip: "192.0.2.1".into(),
            user_agent: "ua".into(),
            method: "password".into(),
            result: "success".into(),
            country: Some("FR".into()),
            ..Default::default()
        };
        // History logged before profiles existed.
        store
            .record_sign_ins(&[row("old-1", 10), row("old-2", 20)])
            .await
            .unwrap();
        assert_eq!(store.sign_in_profile("u1").await.unwrap(), None);

        // The first one since: the profile starts from the log's summary, this row included.
        let seeds = std::sync::Mutex::new(Vec::new());
        let update = |seed: ProfileSeed<'_>| {
            let text = match seed {
                ProfileSeed::Stored(p) => format!("{p}+"),
                ProfileSeed::Log(s) => format!("seeded from {}", s.compared),
            };
            seeds.lock().unwrap().push(text.clone());
            text
        };
        store
            .record_successful_sign_in(&row("new-1", 30), 200, &update)
            .await
            .unwrap();
        assert_eq!(
            store.sign_in_profile("u1").await.unwrap().as_deref(),
            Some("seeded from 3")
        );
        // Later ones update it.
        store
            .record_successful_sign_in(&row("new-2", 40), 200, &update)
            .await
            .unwrap();
        assert_eq!(
            store.sign_in_profile("u1").await.unwrap().as_deref(),
            Some("seeded from 3+")
        );
        assert_eq!(seeds.lock().unwrap().len(), 2, "each read once");
        // The rows are logged with it.
        assert_eq!(
            store
                .sign_ins_for_email("ada@example.com", 10)
                .await
                .unwrap()
                .len(),
            4
        );

        // Two at once: neither update is lost.
        let (third, fourth) = (row("new-3", 50), row("new-4", 60));
        let (a, b) = tokio::join!(
            store.record_successful_sign_in(&third, 200, &update),
            store.record_successful_sign_in(&fourth, 200, &update),
        );
        a.unwrap();
        b.unwrap();
        assert_eq!(
            store.sign_in_profile("u1").await.unwrap().as_deref(),
            Some("seeded from 3+++")
        );

        // Deleting the account deletes its profile.
        assert!(store.delete_account("u1").await.unwrap());
        assert_eq!(store.sign_in_profile("u1").await.unwrap(), None);
    }
}

#[tokio::test]
async fn the_insights_keep_first_and_last_sign_ins_only_of_accounts_that_exist() {
    for store in stores().await {
        store
            .create_user(&NewUser {
                id: "u1",
                email: "ada@example.com",
                display_name: "Ada",
                password_hash: None,
                is_admin: false,
                now: 0,
            })
            .await
            .unwrap();
        let span = |user: &str, last_at: i64| UserSpan {
            user_id: user.into(),
            application: "*".into(),
            first_at: 10,
            last_at,
        };
        let write = |users: Vec<UserSpan>, seq: i64| {
            let store = &store;
            async move {
                let from = store.watermark(SIGN_IN_ROLLUP).await.unwrap();
                let to = Watermark {
                    seq,
                    id: format!("row-{seq}"),
                    rows_done: seq,
                    updated_at: 0,
                };
                assert!(store
                    .apply_rollup(
                        SIGN_IN_ROLLUP,
                        &from,
                        &to,
                        &RollupWrite {
                            users,
                            ..RollupWrite::default()
                        }
                    )
                    .await
                    .unwrap());
            }
        };
        write(vec![span("u1", 20), span("gone", 20)], 1).await;
        let ids = ["u1".to_string(), "gone".to_string()];
        assert_eq!(store.user_spans(&ids).await.unwrap(), vec![span("u1", 20)]);
        write(vec![span("u1", 90)], 2).await;
        assert_eq!(store.user_spans(&ids).await.unwrap(), vec![span("u1", 90)]);
        assert_eq!(
            store.inactive_users("*", &[50, 100]).await.unwrap(),
            (1, vec![0, 1])
        );
        // Deleted with the account, and not brought back by its rows counted afterwards.
        assert!(store.delete_account("u1").await.unwrap());
        assert!(store.user_spans(&ids).await.unwrap().is_empty());
        write(vec![span("u1", 120)], 3).await;
        assert!(store.user_spans(&ids).await.unwrap().is_empty());
        assert_eq!(
            store.inactive_users("*", &[50]).await.unwrap(),
            (0, vec![0])
        );
    }
}

/// The rows after `from` the rollup may read. On PostgreSQL it reads only rows of
/// transactions older than every one still running on the server (any database: the other
/// tests' too), so this waits, up to ten seconds, until some are readable.
async fn committed_rows(store: &Store, from: &Watermark, limit: i64) -> Vec<(i64, SignInLogEntry)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rows = store.sign_ins_to_roll_up(from, limit).await.unwrap();
        if !rows.is_empty() || std::time::Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_sign_in_log_is_pruned_oldest_first_in_batches_on_both_backends() {
    for store in stores().await {
        let rows: Vec<SignInLogEntry> = (0..25)
            .map(|i| SignInLogEntry {
                id: format!("row-{i:02}"),
                occurred_at: i * 100,
                email: "who@example.com".into(),
                application: "account".into(),
                client_ip: "192.0.2.1".into(),
                user_agent: "ua".into(),
                method: "password".into(),
                result: "failure".into(),
                ..Default::default()
            })
            .collect();
        store.record_sign_ins(&rows).await.unwrap();
        // Nothing the insights rollup has not counted goes.
        assert_eq!(store.prune_sign_in_log(1_500, 10).await.unwrap(), 0);
        let roll_up = |from: Watermark, limit: i64| {
            let store = &store;
            async move {
                let batch = committed_rows(store, &from, limit).await;
                let (seq, last) = batch.last().unwrap();
                let to = Watermark {
                    seq: *seq,
                    id: last.id.clone(),
                    rows_done: from.rows_done + batch.len() as i64,
                    updated_at: 0,
                };
                assert!(store
                    .apply_rollup(SIGN_IN_ROLLUP, &from, &to, &RollupWrite::default())
                    .await
                    .unwrap());
                to
            }
        };
        let counted = roll_up(store.watermark(SIGN_IN_ROLLUP).await.unwrap(), 8).await;
        assert_eq!(counted.id, "row-07");
        assert_eq!(store.prune_sign_in_log(1_500, 10).await.unwrap(), 8);
        roll_up(counted, 100).await;
        // Rows before 1,500 go, a batch at a time, the oldest first.
        assert_eq!(store.prune_sign_in_log(1_500, 5).await.unwrap(), 5);
        let left = store
            .sign_ins_for_email("who@example.com", 100)
            .await
            .unwrap();
        assert_eq!(left.len(), 12);
        assert!(left.iter().all(|r| r.occurred_at >= 1_300));
        assert_eq!(store.prune_sign_in_log(1_500, 10).await.unwrap(), 2);
        assert_eq!(store.prune_sign_in_log(1_500, 10).await.unwrap(), 0);
        let left = store
            .sign_ins_for_email("who@example.com", 100)
            .await
            .unwrap();
        assert_eq!(left.len(), 10);
        assert_eq!(
            left.last().unwrap().occurred_at,
            1_500,
            "the boundary stays"
        );
    }
}
