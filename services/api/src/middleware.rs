//! The api's own middleware: who is calling (`identify`), the token the
//! data endpoints demand (`require_token`), the request counters (`track`).
//! They read the shared state; the parts they use (`auth`, `limit`,
//! `metrics`) never import it.

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use db::tokens::TokenGrant;
use domain::token::{Token, TokenState};

use crate::auth::{self, Caller, Identity, EXPIRED, MALFORMED, NO_TOKEN, REVOKED, UNKNOWN};
use crate::error::ApiError;
use crate::limit;
use crate::state::AppState;

/// Middleware: works out the [`Identity`] of every request.
pub async fn identify(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let address = auth::client_ip(&request, &state.config.api);
    let identity = match auth::presented_token(request.headers()) {
        None => Identity {
            caller: Caller::Address(address),
            refusal: Some(NO_TOKEN),
        },
        Some(text) => match Token::parse(&text) {
            Err(_) => Identity {
                caller: Caller::Address(address),
                refusal: Some(MALFORMED),
            },
            Ok(token) => {
                let hash = token.hash(&state.config.secret_key);
                let grant = match state.tokens.cached(&hash, state.config.api.token_cache_ttl) {
                    Some(grant) => grant,
                    None => {
                        let lead = || async {
                            // Before the database: random tokens from one
                            // address are refused here.
                            if let Some(limiter) = &state.lookup_limiter {
                                if let Some(refusal) = limit::check_lookup(limiter, address) {
                                    return Err(refusal);
                                }
                            }
                            state
                                .tokens
                                .fetch(&state.pool, hash)
                                .await
                                .map_err(IntoResponse::into_response)
                        };
                        match state.tokens.lookup_once(hash, lead).await {
                            Ok(grant) => grant,
                            Err(refusal) => return refusal,
                        }
                    }
                };
                identity_of(grant, address, &state)
            }
        },
    };
    request.extensions_mut().insert(identity);
    next.run(request).await
}

fn identity_of(grant: Option<TokenGrant>, address: IpAddr, state: &AppState) -> Identity {
    let refusal = match &grant {
        None => Some(UNKNOWN),
        Some(g) => match g.state_at(chrono::Utc::now()) {
            TokenState::Revoked => Some(REVOKED),
            TokenState::Expired => Some(EXPIRED),
            TokenState::Active => None,
        },
    };
    match (grant, refusal) {
        (Some(grant), None) => {
            state.tokens.note_use(grant.id);
            Identity {
                caller: Caller::Token(grant.id),
                refusal: None,
            }
        }
        (_, refusal) => Identity {
            caller: Caller::Address(address),
            refusal,
        },
    }
}

/// Middleware for data endpoints: 401 without a valid token, 429 when the
/// token already has `max_in_flight_per_token` requests in flight.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let identity = request.extensions().get::<Identity>();
    let refusal = match identity {
        Some(identity) => identity.refusal,
        None => Some(NO_TOKEN),
    };
    if let Some(refusal) = refusal {
        return ApiError::Unauthorized(refusal).into_response();
    }
    let _in_flight = match (
        identity.map(|i| &i.caller),
        state.config.api.max_in_flight_per_token,
    ) {
        (Some(Caller::Token(id)), Some(cap)) => match state.in_flight.enter(*id, cap) {
            Some(guard) => Some(guard),
            None => return limit::too_many_in_flight(cap),
        },
        _ => None,
    };
    next.run(request).await
}

/// Middleware: counts every request under its route pattern (never the raw
/// path, which would give every offer id its own series).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}
