//! The Conditional Access policy editor of the admin console, over HTTP: a policy built in the
//! plain form is saved as exactly the policy the form describes and shown back; a policy that
//! reaches the admin saving it is saved only once confirmed; bad input is refused with what was
//! typed kept; every version is in the history with its changes, and an earlier one can be
//! restored; the impact of a draft is replayed without saving it; every policy is exported and
//! imported as one document; the terms of use are published; and only admins reach any of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::oidc::{register, web_app};
use common::{Browser, Reply, TestServer, PASSWORD};
use gatehouse_core::conditional_access::{
    Assignments, Conditions, Control, Grant, NamedLocation, Platform, Policy, PolicyState,
    SessionControls, SignInFrequency, Targets,
};
use gatehouse_core::identity::PolicyDocument;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use reqwest::StatusCode;

const ADMIN: &str = "admin@example.com";

/// The `<input …>` tag whose id is `id` in `html`.
fn input<'a>(html: &'a str, id: &str) -> &'a str {
    let marker = format!("id=\"{id}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no element with {marker} in {html}"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    let tag = &html[start..=end];
    assert!(tag.starts_with("<input"), "{tag}");
    tag
}

/// Whether the input with this id is checked.
fn checked(html: &str, id: &str) -> bool {
    input(html, id)
        .trim_end_matches(['>', '/'])
        .split_whitespace()
        .any(|attribute| attribute == "checked" || attribute.starts_with("checked="))
}

/// The text of the element with this id (up to its first closing tag).
fn element_text<'a>(html: &'a str, id: &str) -> &'a str {
    let marker = format!("id=\"{id}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no element with {marker} in {html}"));
    let open_end = at + html[at..].find('>').unwrap() + 1;
    let close = open_end + html[open_end..].find("</").unwrap();
    &html[open_end..close]
}

/// `text` as the page shows it (the HTML escapes of text undone).
fn unescaped(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The form of a policy requiring MFA of the shop from every user, in report-only, with a
/// sign-in frequency of 12 hours, on iOS and Android; `more` replaces or adds fields.
fn shop_form<'a>(shop: &'a str, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("existing", ""),
        ("id", ""),
        ("name", "MFA for the shop"),
        ("state", "report-only"),
        ("users_scope", "all"),
        ("users", ""),
        ("exclude_users", ""),
        ("applications", shop),
        ("platforms", "ios"),
        ("platforms", "android"),
        ("location_include", ""),
        ("grant", "require"),
        ("controls", "mfa"),
        ("require_all", "one"),
        ("frequency", "hours"),
        ("hours", "12"),
        ("persistent", ""),
        ("impact_days", "30"),
        ("action", "save"),
    ];
    for (name, value) in more {
        match fields.iter_mut().find(|f| f.0 == *name) {
            Some(field) => field.1 = value,
            None => fields.push((*name, *value)),
        }
    }
    fields
}

fn shop_policy(shop: &str) -> Policy {
    Policy {
        id: "mfa-for-the-shop".into(),
        name: "MFA for the shop".into(),
        state: PolicyState::ReportOnly,
        assignments: Assignments {
            all_users: true,
            ..Assignments::default()
        },
        targets: Targets {
            applications: vec![shop.to_string()],
            ..Targets::default()
        },
        conditions: Conditions {
            platforms: vec![Platform::Ios, Platform::Android],
            ..Conditions::default()
        },
        grant: Grant::Require {
            controls: vec![Control::Mfa],
            require_all: false,
        },
        session: SessionControls {
            sign_in_frequency: Some(SignInFrequency::Hours { hours: 12 }),
            persistent_browser: None,
        },
    }
}

async fn saved(server: &TestServer, id: &str) -> Option<(Policy, i64)> {
    server
        .state
        .identity
        .find_policy(id)
        .await
        .unwrap()
        .map(|e| (e.policy, e.version))
}

async fn audit_actions(server: &TestServer) -> Vec<(String, String)> {
    server
        .store
        .filter_audit(&Default::default(), 0, 100)
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|a| (a.action, a.detail))
        .collect()
}

async fn policy_count(server: &TestServer) -> usize {
    server.state.identity.list_policies().await.unwrap().len()
}

#[tokio::test]
async fn an_admin_builds_a_policy_in_the_editor_edits_it_restores_it_and_deletes_it() {
    let server = TestServer::start().await;
    let shop = register(&server, web_app("Shop")).await;
    let mut console = server.admin_browser("Admin", ADMIN).await;
    let admin = server.user(ADMIN).await;

    // The new-policy page offers the applications, with a new policy's defaults.
    let new = console.get("/admin/access/new-policy").await;
    assert_eq!(new.status, StatusCode::OK);
    assert!(checked(&new.body, "state-report-only") && !checked(&new.body, "state-on"));
    assert!(!checked(&new.body, &format!("applications-{}", shop.id)));
    assert!(!new.body.contains("id=\"policy-warning\""));

    // The policy reaches the admin saving it (every user, nobody excluded): not saved yet.
    let warned = console
        .post("/admin/access/policies", &shop_form(&shop.id, &[]))
        .await;
    assert_eq!(warned.status, StatusCode::OK, "{}", warned.body);
    assert!(warned.location().is_none());
    let warning = element_text(&warned.body, "policy-warning");
    assert!(warning.contains(ADMIN), "{warning}");
    assert!(
        warned.body.contains("value=\"confirm\"") && warned.body.contains("Save anyway"),
        "the answer offers to save anyway"
    );
    assert!(
        !warned.body.contains("value=\"save\""),
        "the plain save button gives way to the confirmation"
    );
    assert_eq!(saved(&server, "mfa-for-the-shop").await, None);
    // What was typed is kept, and the id made from the name is filled in.
    assert!(input(&warned.body, "id").contains("value=\"mfa-for-the-shop\""));
    assert!(input(&warned.body, "name").contains("value=\"MFA for the shop\""));
    assert!(checked(&warned.body, "platforms-ios") && checked(&warned.body, "platforms-android"));

    // Confirmed, it is saved as exactly the policy the form describes.
    let r = console
        .post(
            "/admin/access/policies",
            &shop_form(
                &shop.id,
                &[("id", "mfa-for-the-shop"), ("action", "confirm")],
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.location(),
        Some("/admin/access/policies/mfa-for-the-shop?notice=policy_saved")
    );
    let version_one = shop_policy(&shop.id);
    assert_eq!(
        saved(&server, "mfa-for-the-shop").await,
        Some((version_one.clone(), 1))
    );
    assert!(audit_actions(&server).await.contains(&(
        "admin.policy.saved".into(),
        "mfa-for-the-shop version 1".into()
    )));

    // The editor shows every value back.
    let page = console.get(r.location().unwrap()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .body
        .contains("The policy was saved. It applies on every instance within a few seconds."));
    let html = &page.body;
    assert!(input(html, "name").contains("value=\"MFA for the shop\""));
    assert!(
        html.contains("<code>mfa-for-the-shop</code>"),
        "the id is fixed"
    );
    assert!(input(html, "hours").contains("value=\"12\""));
    for on in [
        "state-report-only".to_string(),
        "users_scope-all".into(),
        format!("applications-{}", shop.id),
        "platforms-ios".into(),
        "platforms-android".into(),
        "grant-require".into(),
        "controls-mfa".into(),
        "require_all-one".into(),
        "frequency-hours".into(),
        "location_include-unset".into(),
        "persistent-unset".into(),
    ] {
        assert!(checked(html, &on), "{on} is checked");
    }
    for off in [
        "state-on",
        "state-off",
        "users_scope-selected",
        "all_applications",
        "account_portal",
        "platforms-windows",
        "platforms-macos",
        "grant-block",
        "controls-passwordless-mfa",
        "controls-terms-of-use",
        "frequency-every-time",
    ] {
        assert!(!checked(html, off), "{off} is not checked");
    }
    // The list of policies links to it.
    let list = console.get("/admin/access").await;
    assert!(list
        .body
        .contains("<a href=\"/admin/access/policies/mfa-for-the-shop\">MFA for the shop</a>"));

    // A policy that excludes the admin is saved at once, without a warning.
    let r = console
        .post(
            "/admin/access/policies",
            &shop_form(
                &shop.id,
                &[
                    ("id", "block-the-shop"),
                    ("name", "Block the shop"),
                    ("state", "on"),
                    ("exclude_users", "Admin@Example.com"),
                    ("grant", "block"),
                    ("frequency", ""),
                    ("hours", ""),
                ],
            ),
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/admin/access/policies/block-the-shop?notice=policy_saved"),
        "{}",
        r.body
    );
    let (blocking, _) = saved(&server, "block-the-shop").await.unwrap();
    assert_eq!(blocking.assignments.exclude_users, vec![admin.id.clone()]);
    assert_eq!(
        (blocking.state, blocking.grant),
        (PolicyState::On, Grant::Block)
    );
    let page = console.get("/admin/access/policies/block-the-shop").await;
    assert!(unescaped(element_text(&page.body, "exclude_users")).contains(ADMIN));

    // An edit makes version 2; the history shows what each version changed.
    let r = console
        .post(
            "/admin/access/policies",
            &shop_form(
                &shop.id,
                &[
                    ("existing", "yes"),
                    ("id", "mfa-for-the-shop"),
                    ("name", "MFA for the shop, enforced"),
                    ("state", "on"),
                    ("action", "confirm"),
                ],
            ),
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/admin/access/policies/mfa-for-the-shop?notice=policy_saved"),
        "{}",
        r.body
    );
    let (version_two, n) = saved(&server, "mfa-for-the-shop").await.unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        version_two,
        Policy {
            name: "MFA for the shop, enforced".into(),
            state: PolicyState::On,
            ..version_one.clone()
        }
    );
    let page = console.get("/admin/access/policies/mfa-for-the-shop").await;
    let html = unescaped(&page.body);
    let history = &html[html.find("id=\"history-heading\"").expect("a history")..];
    let two = &history[history.find("Version 2").expect("version 2")
        ..history.find("Version 1").expect("version 1")];
    assert!(two.contains(ADMIN) && two.contains("(in force)"), "{two}");
    assert!(
        two.contains(r#"name: "MFA for the shop" → "MFA for the shop, enforced""#),
        "{two}"
    );
    assert!(two.contains(r#"state: "report-only" → "on""#), "{two}");
    assert_eq!(
        two.matches("<li><code>").count(),
        2,
        "only the two changes: {two}"
    );
    let one = &history[history.find("Version 1").unwrap()..];
    assert!(
        one.contains(r#"name: (unset) → "MFA for the shop""#),
        "{one}"
    );
    assert!(one.contains("aria-label=\"Restore version 1\""), "{one}");
    assert!(
        !two.contains("Restore version 2"),
        "the version in force is not restored"
    );

    // Restoring version 1 saves it again as version 3.
    let r = console
        .post(
            "/admin/access/policies/mfa-for-the-shop/restore",
            &[("version", "1")],
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/admin/access/policies/mfa-for-the-shop?notice=policy_restored")
    );
    assert_eq!(
        saved(&server, "mfa-for-the-shop").await,
        Some((version_one.clone(), 3))
    );
    let page = console.get(r.location().unwrap()).await;
    assert!(
        page.body
            .contains("The earlier version was saved as the newest one."),
        "the notice says what was done"
    );
    let html = unescaped(&page.body);
    assert!(
        html.contains(r#"name: "MFA for the shop, enforced" → "MFA for the shop""#),
        "version 3 undoes version 2"
    );
    assert!(audit_actions(&server).await.contains(&(
        "admin.policy.restored".into(),
        "mfa-for-the-shop version 1 as version 3".into()
    )));
    let missing = console
        .post(
            "/admin/access/policies/mfa-for-the-shop/restore",
            &[("version", "9")],
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(saved(&server, "mfa-for-the-shop").await.unwrap().1, 3);

    // Deleting it.
    let r = console
        .post("/admin/access/policies/mfa-for-the-shop/delete", &[])
        .await;
    assert_eq!(r.location(), Some("/admin/access?notice=policy_deleted"));
    assert_eq!(saved(&server, "mfa-for-the-shop").await, None);
    let list = console.get(r.location().unwrap()).await;
    assert!(list.body.contains("The policy was deleted."));
    assert!(!list
        .body
        .contains("/admin/access/policies/mfa-for-the-shop\""));
    assert!(list
        .body
        .contains("/admin/access/policies/block-the-shop\""));
    assert_eq!(
        console
            .get("/admin/access/policies/mfa-for-the-shop")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(audit_actions(&server)
        .await
        .contains(&("admin.policy.deleted".into(), "mfa-for-the-shop".into())));
}

#[tokio::test]
async fn bad_input_is_refused_with_what_was_typed_and_terms_are_published_by_admins_only() {
    let server = TestServer::start().await;
    let shop = register(&server, web_app("Shop")).await;
    let mut console = server.admin_browser("Admin", ADMIN).await;
    server.signed_up("Ada", "ada@example.com", PASSWORD).await;
    let typed = "Typed but refused";
    let refused = |r: &Reply, says: &str| {
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        let html = unescaped(element_text(&r.body, "form-error"));
        assert!(html.contains(says), "{says:?} in {html}");
        assert!(input(&r.body, "name").contains(&format!("value=\"{typed}\"")));
        assert!(!r.body.contains("id=\"policy-warning\""));
    };

    // An unknown email among the users is named.
    let r = console
        .post(
            "/admin/access/policies",
            &shop_form(
                &shop.id,
                &[
                    ("name", typed),
                    ("users_scope", "selected"),
                    ("users", "ada@example.com\nghost@example.com"),
                ],
            ),
        )
        .await;
    refused(
        &r,
        "The policy was not saved: no account has the email ghost@example.com.",
    );
    assert!(checked(&r.body, "users_scope-selected"));
    assert!(unescaped(element_text(&r.body, "users")).contains("ghost@example.com"));
    // A grant asking nothing (no control, no session control).
    let r = console
        .post(
            "/admin/access/policies",
            &shop_form(
                &shop.id,
                &[
                    ("name", typed),
                    ("users_scope", "selected"),
                    ("users", "ada@example.com"),
                    ("controls", ""),
                    ("frequency", ""),
                    ("hours", ""),
                ],
            ),
        )
        .await;
    refused(
        &r,
        "The policy was not saved: a grant must require at least one control, block, or set a session control.",
    );
    assert!(checked(&r.body, "platforms-ios"), "the rest is kept too");
    // The terms of use before any are published.
    let terms_policy = shop_form(
        &shop.id,
        &[
            ("name", typed),
            ("users_scope", "selected"),
            ("users", "ada@example.com"),
            ("controls", "terms-of-use"),
        ],
    );
    let r = console.post("/admin/access/policies", &terms_policy).await;
    refused(
        &r,
        "The policy was not saved: publish the terms of use first: the policy requires them.",
    );
    assert!(checked(&r.body, "controls-terms-of-use"));
    assert_eq!(policy_count(&server).await, 0, "nothing was saved");

    // Terms: nothing published yet; an empty title is refused with the text kept.
    let page = console.get("/admin/terms").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Published versions"));
    assert!(page.body.contains("Nothing to show."));
    let r = console
        .post(
            "/admin/terms",
            &[("title", "  "), ("body", "Be kind to the shop.")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("The terms were not published"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("Be kind to the shop."),
        "the text typed is kept"
    );
    assert!(server
        .state
        .identity
        .terms_history()
        .await
        .unwrap()
        .is_empty());
    let r = console
        .post(
            "/admin/terms",
            &[("title", "House rules"), ("body", "Be kind to the shop.")],
        )
        .await;
    assert_eq!(r.location(), Some("/admin/terms?notice=terms_published"));
    let page = console.get(r.location().unwrap()).await;
    assert!(page
        .body
        .contains("The new version of the terms of use is published"));
    let table = &page.body[page.body.find("Published versions").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    assert!(
        table.contains("<td>1</td><td>House rules</td>") && table.contains(ADMIN),
        "{table}"
    );
    assert!(audit_actions(&server)
        .await
        .contains(&("admin.terms.published".into(), "version 1".into())));

    // Now the same policy is saved (it does not reach the admin: no warning).
    let r = console.post("/admin/access/policies", &terms_policy).await;
    let id = "typed-but-refused";
    assert_eq!(
        r.location(),
        Some(&*format!("/admin/access/policies/{id}?notice=policy_saved")),
        "{}",
        r.body
    );
    let (p, _) = saved(&server, id).await.unwrap();
    let ada = server.user("ada@example.com").await;
    assert_eq!(
        p.assignments,
        Assignments {
            users: vec![ada.id],
            ..Assignments::default()
        }
    );
    assert_eq!(
        p.grant,
        Grant::Require {
            controls: vec![Control::TermsOfUse],
            require_all: false
        }
    );
    // A new policy cannot take the id of a saved one.
    let r = console.post("/admin/access/policies", &terms_policy).await;
    refused(&r, "A policy with the id typed-but-refused already exists");
    assert_eq!(saved(&server, id).await.unwrap().1, 1);

    // A customer reaches none of it.
    let mut customer = server
        .signed_up("Carol", "carol@example.com", PASSWORD)
        .await;
    for path in [
        "/admin/access/new-policy",
        "/admin/terms",
        "/admin/access/export",
    ] {
        assert_eq!(
            customer.get(path).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let r = customer
        .post(
            "/admin/access/policies",
            &shop_form(
                &shop.id,
                &[("id", "sneaky"), ("exclude_users", "carol@example.com")],
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = customer
        .post(&format!("/admin/access/policies/{id}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = customer
        .post("/admin/terms", &[("title", "Mine"), ("body", "Mine.")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(saved(&server, "sneaky").await, None);
    assert!(saved(&server, id).await.is_some());
    assert_eq!(
        server.state.identity.terms_history().await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn impact_replays_the_form_without_saving_and_policies_export_and_import() {
    let server = TestServer::start().await;
    let shop = register(&server, web_app("Shop")).await;
    let mut console = server.admin_browser("Admin", ADMIN).await;
    server.signed_up("Ada", "ada@example.com", PASSWORD).await;
    server.signed_up("Bob", "bob@example.com", PASSWORD).await;
    for email in ["ada@example.com", "bob@example.com"] {
        let mut b = Browser::new(&server.base, "198.51.100.7");
        let r = b.sign_in_with_password(email, PASSWORD).await;
        assert_eq!(r.location(), Some("/account"));
    }

    // A block of everyone everywhere, replayed: three sign-ups and two password sign-ins.
    let block_all = [
        ("existing", ""),
        ("id", ""),
        ("name", "Block everyone"),
        ("state", "on"),
        ("users_scope", "all"),
        ("all_applications", "yes"),
        ("account_portal", "yes"),
        ("location_include", ""),
        ("grant", "block"),
        ("require_all", "one"),
        ("frequency", ""),
        ("persistent", ""),
        ("impact_days", "30"),
        ("action", "impact"),
    ];
    let r = console.post("/admin/access/policies", &block_all).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        element_text(&r.body, "impact-summary"),
        "Over the last 30 days, of 5 successful sign-ins, this policy would have blocked 5 (3 users) and asked 0 for more than they proved (0 users)."
    );
    assert!(r.body.contains("Impact by application"));
    assert!(
        r.body.contains("<td>account</td><td>5</td><td>0</td>"),
        "{}",
        r.body
    );
    assert!(r.body.contains("<td>bob@example.com</td>"));
    assert!(!r.body.contains("id=\"policy-warning\""));
    assert!(input(&r.body, "impact_days").contains("value=\"30\""));
    assert!(checked(&r.body, "grant-block") && checked(&r.body, "account_portal"));
    assert_eq!(
        saved(&server, "block-everyone").await,
        None,
        "a replay saves nothing"
    );
    assert_eq!(policy_count(&server).await, 0);
    // MFA of the shop only: nobody signed in there.
    let mut mfa_shop = block_all.to_vec();
    mfa_shop.retain(|(k, _)| !["all_applications", "account_portal", "grant"].contains(k));
    mfa_shop.extend([
        ("applications", shop.id.as_str()),
        ("grant", "require"),
        ("controls", "mfa"),
    ]);
    let r = console.post("/admin/access/policies", &mfa_shop).await;
    assert!(
        element_text(&r.body, "impact-summary").contains(
            "of 5 successful sign-ins, this policy would have blocked 0 (0 users) and asked 0"
        ),
        "{}",
        r.body
    );
    // The replay reaches 1 to 90 days.
    let mut too_long = block_all.to_vec();
    too_long.retain(|(k, _)| *k != "impact_days");
    too_long.push(("impact_days", "91"));
    let r = console.post("/admin/access/policies", &too_long).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r
        .body
        .contains("The impact could not be computed: the replay covers 1 to 90 days."));
    assert_eq!(policy_count(&server).await, 0);

    // Export: a policy saved in the console and a location, as one document to download.
    let now = server.state.now();
    let office = NamedLocation {
        id: "office".into(),
        name: "Office".into(),
        trusted: true,
        ranges: vec!["203.0.113.0/24".parse().unwrap()],
        countries: vec![],
    };
    server
        .state
        .identity
        .save_location(&office, now)
        .await
        .unwrap();
    let r = console
        .post(
            "/admin/access/policies",
            &shop_form(&shop.id, &[("exclude_users", ADMIN)]),
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/admin/access/policies/mfa-for-the-shop?notice=policy_saved"),
        "{}",
        r.body
    );
    let (policy, _) = saved(&server, "mfa-for-the-shop").await.unwrap();
    let export = console.get("/admin/access/export").await;
    assert_eq!(export.status, StatusCode::OK);
    assert_eq!(export.headers[CONTENT_TYPE], "application/json");
    let disposition = export.headers[CONTENT_DISPOSITION].to_str().unwrap();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    let doc: PolicyDocument = serde_json::from_str(&export.body).unwrap();
    assert_eq!(
        doc,
        PolicyDocument {
            locations: vec![office.clone()],
            policies: vec![policy.clone()],
        }
    );

    // Import: the document with one more policy saves it.
    let mut copy = policy.clone();
    copy.id = "imported-copy".into();
    copy.name = "Imported copy".into();
    copy.state = PolicyState::Off;
    let mut more = doc.clone();
    more.policies.push(copy.clone());
    let r = console
        .post(
            "/admin/access/import",
            &[("document", serde_json::to_string(&more).unwrap().as_str())],
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/admin/access?notice=policies_imported"),
        "{}",
        r.body
    );
    assert_eq!(
        saved(&server, "imported-copy").await,
        Some((copy.clone(), 1))
    );
    assert_eq!(
        saved(&server, "mfa-for-the-shop").await,
        Some((policy.clone(), 2))
    );
    let list = console.get(r.location().unwrap()).await;
    assert!(list
        .body
        .contains("The policies and locations of the document were saved."));
    assert!(list
        .body
        .contains("<a href=\"/admin/access/policies/imported-copy\">Imported copy</a>"));
    assert!(audit_actions(&server).await.contains(&(
        "admin.policies.imported".into(),
        "2 policies, 1 locations".into()
    )));

    // What is not a policy document is refused, and nothing is saved.
    let r = console
        .post("/admin/access/import", &[("document", "this is not JSON")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("was not imported"), "{}", r.body);
    assert!(r.body.contains("it is not a policy document"));
    // A document with one bad policy saves none of its policies.
    let mut third = copy.clone();
    third.id = "third".into();
    let mut bad = copy.clone();
    bad.id = "nameless".into();
    bad.name = String::new();
    let broken = PolicyDocument {
        locations: vec![],
        policies: vec![third, bad],
    };
    let r = console
        .post(
            "/admin/access/import",
            &[("document", serde_json::to_string(&broken).unwrap().as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let html = unescaped(&r.body);
    assert!(
        html.contains(r#"The document was not imported: policy "nameless": the name must have 1 to 100 characters."#),
        "{html}"
    );
    assert_eq!(saved(&server, "third").await, None);
    assert_eq!(saved(&server, "nameless").await, None);
    assert_eq!(policy_count(&server).await, 2);
}
