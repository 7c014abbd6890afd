//! The Follower's side of a Choir session: the first join with a scanned code (retried until
//! the Master answers or refuses for good), rejoins with the stored code when the engine asks,
//! and dropping the results of attempts no longer wanted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use maestral_protocol::{DeviceId, SessionId};
use maestral_sync::{Event, LinkSignal, LocalAction, Phase};
use tokio::sync::mpsc;

use super::error::{JoinFailure, SyncError};
use super::handle::SyncEvent;
use super::link::{first_text, wait_open};
use super::worker::{Ctx, Internal, ReadyKind};
use crate::joincode::{JoinCode, fingerprints_match};
use crate::rtc::{Link, LinkEvent, RtcConfig, sha256_fingerprint};
use crate::signaling::{JoinError, JoinRequestBody, post_join};

#[derive(Default)]
pub(crate) struct FollowerIo {
    /// The Master's id and the code to rejoin with.
    master: Option<(DeviceId, JoinCode)>,
    /// The join attempt whose result is still wanted. A result of any other attempt (finished
    /// after `leave`, an end, a refusal or a newer attempt) is closed and dropped.
    attempt: Arc<AtomicU64>,
}

impl FollowerIo {
    /// Whether the result of join attempt `attempt` is still wanted.
    pub(crate) fn wants(&self, attempt: u64) -> bool {
        attempt == self.attempt.load(Ordering::SeqCst)
    }

    /// No attempt under way is wanted any more.
    fn drop_attempts(&self) -> u64 {
        self.attempt.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The user leaves (the engine sends `LEAVE_SESSION` next).
    pub(crate) fn leave(&mut self) {
        self.master = None;
        self.drop_attempts();
    }

    /// Before a new first join: leaves the old session properly (`LEAVE_SESSION`, then the link
    /// closes). True when there was one, so the caller carries out the engine's outputs first.
    pub(crate) fn leave_for_new_join(&mut self, ctx: &mut Ctx) -> bool {
        if self.master.take().is_none() {
            return false;
        }
        ctx.local(LocalAction::Leave);
        true
    }

    /// Before the thread stops: leaves a session whose link is up.
    pub(crate) fn leave_on_shutdown(&mut self, ctx: &mut Ctx) -> bool {
        if !self.master.as_ref().is_some_and(|(m, _)| ctx.links.contains(m)) {
            return false;
        }
        ctx.local(LocalAction::Leave);
        true
    }

    pub(crate) fn engine_event(&mut self, e: &Event) {
        if let Event::SessionEnded | Event::JoinRejected { .. } = e {
            self.master = None;
            self.drop_attempts();
        }
    }

    /// The engine closed the link to `peer`: an attempt it gave up on (timed out) must not
    /// land later.
    pub(crate) fn disconnected(&mut self, peer: &DeviceId) {
        if self.master.as_ref().is_some_and(|(m, _)| m == peer) {
            self.drop_attempts();
        }
    }

    // ---- the first join ------------------------------------------------------------------------
    //
    // Today the sync thread drives the phases of a first join: `FOLLOWER_JOINING` when it starts,
    // and a refusal for good followed by `FOLLOWER_IDLE_LOCAL`. These three functions are the
    // whole of it.

    /// Joins with a scanned code: until the Master answers or refuses for good, so a Wi-Fi
    /// glitch or a busy Master does not make a singer scan again (backoff as the engine's).
    pub(crate) fn first_join(&mut self, ctx: &mut Ctx, code: JoinCode) {
        ctx.emit(SyncEvent::Engine(Event::Phase(Phase::FollowerJoining)));
        let attempt = self.drop_attempts();
        let current = self.attempt.clone();
        let (cfg, me, timeout, tx, timing) = (
            ctx.cfg.rtc,
            ctx.cfg.device_id.clone(),
            ctx.cfg.join_timeout,
            ctx.internal.clone(),
            ctx.cfg.timing,
        );
        tokio::spawn(async move {
            let mut delay = timing.backoff_initial_ms.max(1);
            let mut told = false;
            loop {
                if current.load(Ordering::SeqCst) != attempt {
                    return;
                }
                let failure = match join_link(&cfg, &me, &code, timeout).await {
                    Ok((link, mut events)) => match first_text(&mut events, timeout).await {
                        Some((sender, text)) => {
                            let kind = ReadyKind::FirstJoin(code);
                            let first = Some(text);
                            let msg = Internal::Ready {
                                peer: sender,
                                link,
                                events,
                                first,
                                kind,
                                attempt,
                            };
                            if let Err(mpsc::error::SendError(Internal::Ready { link, .. })) =
                                tx.send(msg)
                            {
                                link.close().await;
                            }
                            return;
                        }
                        None => {
                            link.close().await;
                            JoinFailure::Other(
                                "the conductor's device connected but never introduced itself"
                                    .into(),
                            )
                        }
                    },
                    Err(e) => e,
                };
                if failure.is_final() {
                    // The worker gone means nobody waits for the result.
                    let _ = tx.send(Internal::JoinFailed { peer: None, error: failure, attempt });
                    return;
                }
                if !told {
                    // Once: the app shows it; the retries stay quiet.
                    told = true;
                    let _ = tx.send(Internal::Error(SyncError::JoinRetrying(failure)));
                }
                tokio::time::sleep(Duration::from_millis(delay)).await;
                delay = (delay * 2).min(timing.backoff_max_ms.max(1));
            }
        });
    }

    /// The first join's link is up (registered, the engine told): join the session.
    pub(crate) fn joined(&mut self, ctx: &mut Ctx, master: &DeviceId, code: JoinCode) {
        let join = LocalAction::Join {
            master: master.clone(),
            session_id: SessionId::new(code.session_id.clone()),
            token: code.token.clone(),
        };
        self.master = Some((master.clone(), code));
        ctx.local(join);
    }

    /// A join attempt failed: a rejoin goes back to the engine, which backs off and retries; a
    /// first join ends here only when refused for good: one message, the refusal itself.
    pub(crate) fn join_failed(
        &mut self,
        ctx: &mut Ctx,
        master: Option<DeviceId>,
        error: JoinFailure,
        attempt: u64,
    ) {
        if attempt != 0 && !self.wants(attempt) {
            return;
        }
        let Some(master) = master else {
            self.drop_attempts();
            match error.protocol_reason() {
                Some(reason) => ctx.emit(SyncEvent::Engine(Event::JoinRejected { reason })),
                None => ctx.error(SyncError::Join(error)),
            }
            ctx.emit(SyncEvent::Engine(Event::Phase(Phase::FollowerIdleLocal)));
            return;
        };
        match error.protocol_reason() {
            Some(reason) => {
                let now = ctx.now();
                ctx.engine.handle_join_refused(now, &master, reason);
            }
            // Unreachable, busy, timed out: the engine backs off and tries again.
            None => ctx.link(&master, LinkSignal::Down),
        }
    }

    // ---- rejoins -------------------------------------------------------------------------------

    /// The engine wants the link to the Master back: a rejoin with the stored code.
    pub(crate) fn rejoin(&mut self, ctx: &Ctx, peer: DeviceId) {
        let Some((master, code)) = self.master.clone().filter(|(m, _)| *m == peer) else {
            return;
        };
        let attempt = self.drop_attempts();
        let (cfg, me, timeout, tx) =
            (ctx.cfg.rtc, ctx.cfg.device_id.clone(), ctx.cfg.join_timeout, ctx.internal.clone());
        tokio::spawn(async move {
            let msg = match join_link(&cfg, &me, &code, timeout).await {
                Ok((link, events)) => Internal::Ready {
                    peer: master,
                    link,
                    events,
                    first: None,
                    kind: ReadyKind::Known,
                    attempt,
                },
                Err(error) => Internal::JoinFailed { peer: Some(master), error, attempt },
            };
            if let Err(mpsc::error::SendError(Internal::Ready { link, .. })) = tx.send(msg) {
                link.close().await;
            }
        });
    }
}

/// Offer → `POST /v1/join` → check the answer's fingerprint against the join code → open.
async fn join_link(
    cfg: &RtcConfig,
    me: &DeviceId,
    code: &JoinCode,
    timeout: Duration,
) -> Result<(Link, mpsc::UnboundedReceiver<LinkEvent>), JoinFailure> {
    let (link, offer, mut events) = Link::offer(cfg, None)
        .await
        .map_err(|e| JoinFailure::Other(format!("could not prepare a connection: {e}")))?;
    let body = JoinRequestBody {
        session_id: code.session_id.clone(),
        token: code.token.clone(),
        device_id: me.to_string(),
        offer,
    };
    let answer = match post_join(code.host, &body, timeout).await {
        Ok(a) => a,
        Err(e) => {
            link.close().await;
            return Err(match e {
                JoinError::Rejected(r) => JoinFailure::Refused(r),
                other => JoinFailure::Other(other.to_string()),
            });
        }
    };
    // The answer must come from the Master whose certificate the QR code names: no one else on
    // the LAN can sit in the middle.
    let genuine =
        sha256_fingerprint(&answer).is_some_and(|fp| fingerprints_match(&fp, &code.fingerprint));
    if !genuine {
        link.close().await;
        return Err(JoinFailure::Forged);
    }
    if let Err(e) = link.accept_answer(&answer).await {
        link.close().await;
        return Err(JoinFailure::Other(format!("the conductor's answer did not work: {e}")));
    }
    if !wait_open(&mut events, timeout).await {
        link.close().await;
        return Err(JoinFailure::Other(
            "the connection to the conductor's device did not open — check the network".into(),
        ));
    }
    Ok((link, events))
}
