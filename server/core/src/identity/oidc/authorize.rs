//! The authorization endpoint: validating a request byte for byte, deciding it for the
//! application with the browser's session (sign-in, step-up, enrollment, consent), and
//! issuing single-use codes. Every answer from an existing session is in the sign-in log.

use super::*;
use crate::identity::{decide_for_application, ApplicationDecision, ApplicationSignals, Strength};

impl Identity {
    // ------------------------------------------------------------ authorization

    /// Validates an authorization request's parameters (as received, in order). Until the
    /// client and its redirect URI are known good, every problem is a page; after that, an
    /// error goes back to the client.
    pub async fn validate_authorization(
        &self,
        params: &[(String, String)],
    ) -> Result<(Client, AuthorizationRequest), AuthorizeRejection> {
        let mut seen = HashSet::new();
        let mut duplicate = None;
        for (k, _) in params {
            if !seen.insert(k.as_str()) {
                duplicate.get_or_insert(k.as_str());
            }
        }
        let get = |name: &str| -> Option<&str> {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let page = AuthorizeRejection::Page;
        if matches!(duplicate, Some("client_id" | "redirect_uri")) {
            return Err(page(AuthorizePageError::DuplicateParameter));
        }
        let client_id = get("client_id")
            .filter(|s| !s.is_empty())
            .ok_or(page(AuthorizePageError::MissingClient))?;
        let client = match self.client(client_id).await {
            Ok(Some(c)) => c,
            _ => return Err(page(AuthorizePageError::UnknownClient)),
        };
        let redirect_uri = get("redirect_uri")
            .filter(|s| !s.is_empty())
            .ok_or(page(AuthorizePageError::MissingRedirectUri))?;
        if !client.has_redirect_uri(redirect_uri) {
            return Err(page(AuthorizePageError::UnregisteredRedirectUri));
        }
        let state = get("state").map(str::to_string);
        let fail = |error: &'static str, description: &str| {
            AuthorizeRejection::Redirect(AuthorizeErrorRedirect {
                redirect_uri: redirect_uri.to_string(),
                error,
                description: description.to_string(),
                state: state.clone().filter(|s| s.len() <= MAX_STATE),
            })
        };
        if let Some(d) = duplicate {
            return Err(fail(
                "invalid_request",
                &format!("the parameter {d} appears more than once"),
            ));
        }
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
            return Err(fail("invalid_request", "state is too long"));
        }
        if get("request").is_some() {
            return Err(fail(
                "request_not_supported",
                "request objects are not supported",
            ));
        }
        if get("request_uri").is_some() {
            return Err(fail(
                "request_uri_not_supported",
                "request_uri is not supported",
            ));
        }
        match get("response_type") {
            Some("code") => {}
            None | Some("") => return Err(fail("invalid_request", "response_type is required")),
            Some(_) => {
                return Err(fail(
                    "unsupported_response_type",
                    "only the authorization code flow (response_type=code) is supported",
                ))
            }
        }
        if !matches!(get("response_mode"), None | Some("query")) {
            return Err(fail(
                "invalid_request",
                "only response_mode=query is supported",
            ));
        }
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(fail(
                "unauthorized_client",
                "the client may not use the authorization code flow",
            ));
        }
        let scope = scope_list(get("scope").unwrap_or(""));
        if scope.iter().any(|s| !SCOPES.contains(&s.as_str())) {
            return Err(fail("invalid_scope", "unknown scope"));
        }
        if scope.iter().any(|s| s == "offline_access") && !client.allows(GrantType::RefreshToken) {
            return Err(fail(
                "invalid_scope",
                "offline_access needs the refresh token grant",
            ));
        }
        match get("code_challenge_method") {
            Some("S256") => {}
            None if get("code_challenge").is_none() => {}
            None => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method must be S256",
                ))
            }
            Some(_) => {
                return Err(fail(
                    "invalid_request",
                    "only the S256 code challenge method is supported",
                ))
            }
        }
        let code_challenge = match get("code_challenge") {
            Some(c) if c.len() == 43 && is_pkce_string(c) => c.to_string(),
            Some(_) => return Err(fail("invalid_request", "code_challenge is malformed")),
            None => {
                return Err(fail(
                    "invalid_request",
                    "PKCE is required: send code_challenge with code_challenge_method=S256",
                ))
            }
        };
        let nonce = get("nonce").map(str::to_string);
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE) {
            return Err(fail("invalid_request", "nonce is too long"));
        }
        let mut prompt = Prompt::default();
        for p in get("prompt")
            .unwrap_or("")
            .split(' ')
            .filter(|p| !p.is_empty())
        {
            match p {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "create" => prompt.create = true,
                "select_account" => {}
                _ => return Err(fail("invalid_request", "unknown prompt value")),
            }
        }
        if prompt.none && (prompt.login || prompt.consent || prompt.create) {
            return Err(fail(
                "invalid_request",
                "prompt=none cannot be combined with other values",
            ));
        }
        let max_age = match get("max_age") {
            None | Some("") => None,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 0 => Some(n.min(i64::MAX / 1000)),
                _ => {
                    return Err(fail(
                        "invalid_request",
                        "max_age must be a number of seconds",
                    ))
                }
            },
        };
        let login_hint = get("login_hint")
            .map(str::trim)
            .filter(|h| !h.is_empty() && h.len() <= MAX_LOGIN_HINT)
            .map(str::to_string);
        let ui_locales = get("ui_locales")
            .filter(|l| l.len() <= 200)
            .map(str::to_string);
        // OpenID Connect Core §3.1.2.1: the requested Authentication Context Class References,
        // in order of preference. Asking for multifactor among them makes it a requirement
        // (the only stronger class we issue); other values leave the request as it was.
        let requires_multifactor = get("acr_values")
            .unwrap_or("")
            .split(' ')
            .any(|v| v == ACR_MULTIFACTOR);
        Ok((
            client,
            AuthorizationRequest {
                client_id: client_id.to_string(),
                redirect_uri: redirect_uri.to_string(),
                scope,
                state,
                nonce,
                code_challenge,
                prompt,
                max_age,
                login_hint,
                ui_locales,
                requires_multifactor,
            },
        ))
    }

    pub(super) fn error_redirect(
        &self,
        req: &AuthorizationRequest,
        error: &'static str,
        description: &str,
    ) -> String {
        self.rejection_url(&AuthorizeErrorRedirect {
            redirect_uri: req.redirect_uri.clone(),
            error,
            description: description.to_string(),
            state: req.state.clone(),
        })
    }

    /// The URL an error goes back to the client with (`state` and `iss` included).
    pub fn rejection_url(&self, r: &AuthorizeErrorRedirect) -> String {
        let mut params = vec![
            ("error", r.error),
            ("error_description", r.description.as_str()),
        ];
        if let Some(s) = &r.state {
            params.push(("state", s));
        }
        params.push(("iss", self.issuer()));
        with_query(&r.redirect_uri, &params)
    }

    /// Whether the session was authenticated recently enough for the request made at
    /// `requested_at` (`prompt=login` wants a sign-in after the request; `max_age` one within
    /// that many seconds of it).
    pub(super) fn fresh_enough(
        req: &AuthorizationRequest,
        requested_at: i64,
        session: &Session,
    ) -> bool {
        if req.prompt.login && session.auth_time < requested_at {
            return false;
        }
        if let Some(max_age) = req.max_age {
            if session.auth_time < requested_at - max_age * 1000 {
                return false;
            }
        }
        true
    }

    pub(super) async fn needs_consent(
        &self,
        client: &Client,
        req: &AuthorizationRequest,
        user: &User,
    ) -> Result<bool, AuthError> {
        if client.first_party {
            return Ok(false);
        }
        if req.prompt.consent {
            return Ok(true);
        }
        let granted = self.store.consented_scope(&user.id, &client.id).await?;
        Ok(match granted {
            None => true,
            Some(g) => {
                let g = scope_list(&g);
                !req.scope.iter().all(|s| g.contains(s))
            }
        })
    }

    /// Decides a valid request, given the browser's session (if any).
    pub async fn authorize(
        &self,
        ctx: &RequestContext,
        client: Client,
        req: AuthorizationRequest,
        session: Option<(Session, User)>,
        now: i64,
    ) -> Result<AuthorizeNext, AuthError> {
        self.decide(ctx, client, req, None, session, now, now).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn decide(
        &self,
        ctx: &RequestContext,
        client: Client,
        req: AuthorizationRequest,
        request_id: Option<String>,
        session: Option<(Session, User)>,
        requested_at: i64,
        now: i64,
    ) -> Result<AuthorizeNext, AuthError> {
        let Some((session, user)) = &session else {
            if req.prompt.none {
                return Ok(AuthorizeNext::Redirect(self.error_redirect(
                    &req,
                    "login_required",
                    "the person is not signed in",
                )));
            }
            let request_id = self.park(&req, request_id, now).await?;
            return Ok(AuthorizeNext::SignIn {
                request_id,
                create: req.prompt.create,
                login_hint: req.login_hint.clone(),
            });
        };
        // What the application needs of the session comes before consent and before any code.
        // Every answer to the application from here on is written to the sign-in log under its
        // id, with method `sso`.
        let access = self.access_decision(ctx, user, &client.id, now).await?;
        let ctx = &RequestContext {
            policy_results: Some(access.log_json()),
            ..ctx.clone()
        };
        let signals = ApplicationSignals {
            application: client.id.clone(),
            fresh: Self::fresh_enough(&req, requested_at, session)
                && access
                    .sign_in_frequency
                    .is_none_or(|f| f.met(session.auth_time, requested_at, now)),
            strength: Strength::parse(&session.amr),
            needs_enrollment: self.needs_enrollment(user).await?,
            requires_multifactor: req.requires_multifactor,
            terms_accepted: !access.terms_of_use || self.accepted_current_terms(user).await?,
            access,
        };
        let decision = decide_for_application(&signals);
        let sso = |result: Result<(), AuthError>| {
            self.log_single_sign_on(ctx, &client.id, user, session, result, now)
        };
        if let Some(err) = decision.logged_error(!req.prompt.none) {
            sso(Err(err)).await?;
            if req.prompt.none || decision == ApplicationDecision::Blocked {
                let (error, description) = decision
                    .oauth_error()
                    .unwrap_or(("interaction_required", "an interaction is needed"));
                return Ok(AuthorizeNext::Redirect(self.error_redirect(
                    &req,
                    error,
                    description,
                )));
            }
            let request_id = self.park(&req, request_id, now).await?;
            return Ok(match decision {
                ApplicationDecision::SignInAgain
                | ApplicationDecision::Proceed
                | ApplicationDecision::Blocked => AuthorizeNext::SignIn {
                    request_id,
                    create: false,
                    login_hint: req.login_hint.clone(),
                },
                ApplicationDecision::Enroll => AuthorizeNext::Enroll {
                    request_id,
                    by_tenant: true,
                },
                ApplicationDecision::AcceptTerms => AuthorizeNext::AcceptTerms { request_id },
                ApplicationDecision::ChangePassword => AuthorizeNext::ChangePassword { request_id },
                ApplicationDecision::SecondFactor => {
                    match self.begin_step_up(session, user, now).await? {
                        Some(pending_id) => AuthorizeNext::SecondFactor {
                            request_id,
                            pending_id,
                        },
                        None => AuthorizeNext::Enroll {
                            request_id,
                            by_tenant: false,
                        },
                    }
                }
            });
        }
        if self.needs_consent(&client, &req, user).await? {
            if req.prompt.none {
                return Ok(AuthorizeNext::Redirect(self.error_redirect(
                    &req,
                    "consent_required",
                    "the person has not consented to this application",
                )));
            }
            let request_id = self.park(&req, request_id, now).await?;
            let scope = req.scope.clone();
            return Ok(AuthorizeNext::Consent {
                request_id,
                client: Box::new(client),
                scope,
            });
        }
        if let Some(id) = &request_id {
            if !self.store.take_authorization_request(id).await? {
                // Another tab finished this request first.
                return Ok(AuthorizeNext::Redirect(self.error_redirect(
                    &req,
                    "invalid_request",
                    "the authorization request was already answered",
                )));
            }
        }
        let url = self
            .issue_code(ctx, &client, &req, session, user, now)
            .await?;
        sso(Ok(())).await?;
        Ok(AuthorizeNext::Redirect(url))
    }

    /// Writes an answer to an application's request from an existing session to the sign-in
    /// log (method `sso`, under the application's id).
    pub(super) async fn log_single_sign_on(
        &self,
        ctx: &RequestContext,
        client_id: &str,
        user: &User,
        session: &Session,
        result: Result<(), AuthError>,
        now: i64,
    ) -> Result<(), AuthError> {
        let ctx = RequestContext {
            application: client_id.to_string(),
            ..ctx.clone()
        };
        self.log_attempt(
            &ctx,
            &user.email,
            Some(&user.id),
            crate::identity::Method::SingleSignOn,
            result.as_ref().map(|_| ()),
            Some(&session.id),
            now,
        )
        .await
    }

    pub(super) async fn park(
        &self,
        req: &AuthorizationRequest,
        existing: Option<String>,
        now: i64,
    ) -> Result<String, AuthError> {
        if let Some(id) = existing {
            return Ok(id);
        }
        let id = random_id();
        let params = serde_json::to_string(req).map_err(|e| internal(&e))?;
        self.store
            .save_authorization_request(
                &id,
                &req.client_id,
                &params,
                now,
                now + AUTHORIZATION_REQUEST_TTL_MS,
            )
            .await?;
        Ok(id)
    }

    /// A waiting request: the request and its client, if it is still waiting.
    pub async fn waiting_authorization(
        &self,
        request_id: &str,
        now: i64,
    ) -> Result<Option<(Client, AuthorizationRequest, i64)>, AuthError> {
        if request_id.is_empty() || request_id.len() > 64 {
            return Ok(None);
        }
        let Some((client_id, params, created_at)) = self
            .store
            .find_authorization_request(request_id, now)
            .await?
        else {
            return Ok(None);
        };
        let Ok(req) = serde_json::from_str::<AuthorizationRequest>(&params) else {
            return Ok(None);
        };
        Ok(self
            .client(&client_id)
            .await?
            .filter(|c| c.has_redirect_uri(&req.redirect_uri))
            .map(|c| (c, req, created_at)))
    }

    /// Whether a waiting request still needs a (new) sign-in with this session.
    pub async fn waiting_needs_sign_in(
        &self,
        request_id: &str,
        session: Option<&Session>,
        now: i64,
    ) -> Result<bool, AuthError> {
        Ok(match self.waiting_authorization(request_id, now).await? {
            Some((_, req, created_at)) => {
                !session.is_some_and(|s| Self::fresh_enough(&req, created_at, s))
            }
            None => false,
        })
    }

    /// Continues a waiting request after a sign-in. `None` when it is gone (expired or done).
    pub async fn resume_authorization(
        &self,
        ctx: &RequestContext,
        request_id: &str,
        session: Option<(Session, User)>,
        now: i64,
    ) -> Result<Option<AuthorizeNext>, AuthError> {
        let Some((client, mut req, created_at)) =
            self.waiting_authorization(request_id, now).await?
        else {
            return Ok(None);
        };
        // Whoever is asked again is no longer asked silently.
        req.prompt.none = false;
        self.decide(
            ctx,
            client,
            req,
            Some(request_id.to_string()),
            session,
            created_at,
            now,
        )
        .await
        .map(Some)
    }

    /// The person's answer on the consent page. Approval is remembered.
    pub async fn answer_consent(
        &self,
        ctx: &RequestContext,
        request_id: &str,
        session: Option<(Session, User)>,
        approve: bool,
        now: i64,
    ) -> Result<Option<AuthorizeNext>, AuthError> {
        let Some((client, mut req, created_at)) =
            self.waiting_authorization(request_id, now).await?
        else {
            return Ok(None);
        };
        let Some((s, user)) = session.filter(|(s, _)| Self::fresh_enough(&req, created_at, s))
        else {
            return self.resume_authorization(ctx, request_id, None, now).await;
        };
        if !approve {
            self.store.take_authorization_request(request_id).await?;
            return Ok(Some(AuthorizeNext::Redirect(self.error_redirect(
                &req,
                "access_denied",
                "the person declined",
            ))));
        }
        let granted = match self.store.consented_scope(&user.id, &client.id).await? {
            Some(g) => {
                let mut all = scope_list(&g);
                for s in &req.scope {
                    if !all.contains(s) {
                        all.push(s.clone());
                    }
                }
                all.join(" ")
            }
            None => req.scope.join(" "),
        };
        self.store
            .put_consent(&user.id, &client.id, &granted, now)
            .await?;
        req.prompt.consent = false;
        req.prompt.none = false;
        self.decide(
            ctx,
            client,
            req,
            Some(request_id.to_string()),
            Some((s, user)),
            created_at,
            now,
        )
        .await
        .map(Some)
    }

    /// The applications a person consented to, with the scope: (client, scope, granted at).
    pub async fn consents(&self, user_id: &str) -> Result<Vec<(Client, String, i64)>, AuthError> {
        Ok(self
            .store
            .consents_of_user(user_id)
            .await?
            .into_iter()
            .map(|(c, s, t)| (Client::from_record(c), s, t))
            .collect())
    }

    /// The applications with access to an account: consented to, or holding live tokens.
    pub async fn connected_applications(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<ConnectedApplication>, AuthError> {
        let mut out: Vec<ConnectedApplication> = Vec::new();
        fn merge(out: &mut Vec<ConnectedApplication>, client: Client, scope: &str, since: i64) {
            let entry = match out.iter_mut().position(|a| a.client.id == client.id) {
                Some(i) => &mut out[i],
                None => {
                    out.push(ConnectedApplication {
                        client,
                        scope: Vec::new(),
                        since,
                    });
                    let last = out.len() - 1;
                    &mut out[last]
                }
            };
            entry.since = entry.since.min(since);
            for s in scope_list(scope) {
                if !entry.scope.contains(&s) {
                    entry.scope.push(s);
                }
            }
        }
        for (client, scope, granted_at) in self.consents(user_id).await? {
            merge(&mut out, client, &scope, granted_at);
        }
        for grant in self.store.live_grants_of_user(user_id, now).await? {
            if let Some(client) = self.client(&grant.client_id).await? {
                merge(&mut out, client, &grant.scope, grant.created_at);
            }
        }
        out.sort_by(|a, b| a.client.name.cmp(&b.client.name));
        Ok(out)
    }

    /// Removes an application's access to an account: its consent and every token it holds.
    pub async fn disconnect_application(
        &self,
        ctx: &RequestContext,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        let consent = self.store.delete_consent(user_id, client_id).await?;
        let grants = self
            .store
            .revoke_client_grants_of_user(user_id, client_id, now)
            .await?;
        let changed = consent || grants > 0;
        if changed {
            self.audit(ctx, user_id, "oauth.access_removed", client_id, now)
                .await?;
        }
        Ok(changed)
    }

    /// Withdraws consent: the application must ask again, and its tokens die now.
    pub async fn revoke_consent(
        &self,
        ctx: &RequestContext,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        let removed = self.store.delete_consent(user_id, client_id).await?;
        if removed {
            self.store
                .revoke_client_grants_of_user(user_id, client_id, now)
                .await?;
            self.audit(ctx, user_id, "oauth.consent_revoked", client_id, now)
                .await?;
        }
        Ok(removed)
    }

    pub(super) async fn issue_code(
        &self,
        ctx: &RequestContext,
        client: &Client,
        req: &AuthorizationRequest,
        session: &Session,
        user: &User,
        now: i64,
    ) -> Result<String, AuthError> {
        let scope = req.scope.join(" ");
        let grant = GrantRecord {
            id: random_id(),
            client_id: client.id.clone(),
            user_id: Some(user.id.clone()),
            session_id: Some(session.id.clone()),
            scope: scope.clone(),
            credential_epoch: user.credential_epoch,
            offline: req.scope.iter().any(|s| s == "offline_access"),
            auth_time: Some(session.auth_time),
            amr: Some(session.amr.clone()),
            created_at: now,
            // Until its code is redeemed the grant lives no longer than the code.
            expires_at: now + CODE_TTL_MS,
            revoked_at: None,
            origin_asn: None,
            origin_country: None,
        };
        let code = secret_token();
        self.store
            .create_grant(
                &grant,
                Some((
                    &token_hash(&code),
                    &CodeGrant {
                        grant_id: grant.id.clone(),
                        redirect_uri: req.redirect_uri.clone(),
                        code_challenge: Some(req.code_challenge.clone()),
                        nonce: req.nonce.clone(),
                        expires_at: now + CODE_TTL_MS,
                    },
                )),
                now,
            )
            .await?;
        self.audit(ctx, &user.id, "oauth.authorized", &client.id, now)
            .await?;
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = &req.state {
            params.push(("state", s));
        }
        params.push(("iss", self.issuer()));
        Ok(with_query(&req.redirect_uri, &params))
    }
}
