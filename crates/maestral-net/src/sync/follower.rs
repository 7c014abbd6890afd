//! The Follower's side of a Choir session: the attempts of a first join with a scanned code and
//! of rejoins with the stored code, each when the engine asks (it owns the phases, the backoff
//! and the outcome), and dropping the results of attempts no longer wanted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use maestral_protocol::{DeviceId, SessionId};
use maestral_sync::{Event, LinkSignal, LocalAction};
use tokio::sync::mpsc;

use super::error::{JoinFailure, SyncError};
use super::link::{Callee, dial, first_text};
use super::store::{self, SavedIdentity, SavedMembership};
use super::worker::{Ctx, Internal, ReadyKind};
use crate::joincode::JoinCode;
use crate::rtc::{DtlsCert, Link, LinkEvent, RtcConfig};
use crate::signaling::JoinRequestBody;
use crate::state::{self, files};

#[derive(Default)]
pub(crate) struct FollowerIo {
    /// The Master's id and the code to rejoin with.
    master: Option<(DeviceId, JoinCode)>,
    /// A first join under way: the scanned code (the Master's id is not known yet).
    joining: Option<JoinCode>,
    /// What the first join's trouble was told as: each kind once, its retries stay quiet.
    told: Option<String>,
    /// The join attempt whose result is still wanted. A result of any other attempt (finished
    /// after `leave`, an end, a refusal or a newer attempt) is closed and dropped.
    attempt: Arc<AtomicU64>,
    /// What `follower-session.json` holds (as this thread last wrote or read it).
    saved: Option<SavedMembership>,
    /// Scores being fetched from the Master, kept in memory only.
    pub(crate) fetches: super::stream::Fetches,
    /// The certificate every join and rejoin of a session is made with, and that session's id
    /// (kept in `follower-identity.json`, and with the session): the Master binds this device's
    /// id to it for the whole session, and refuses the id from any other certificate.
    cert: Option<(String, DtlsCert)>,
    /// The last first-join attempt did not surely reach the Master (the next asks where it is).
    unreached: bool,
    /// Where a locate answer last said the Master is, until a link opens: every later attempt
    /// tries there too, beside the stored address (an attempt that fails fast at the old
    /// address must not drop the answer before the join there is done).
    located: Option<JoinCode>,
    /// The stored code as text, made once: `save` runs after every input (a page turn too).
    code_text: CodeText,
}

/// A join code and its text (its URI, with the fingerprint percent-encoded), kept together.
#[derive(Default)]
struct CodeText(Option<(JoinCode, String)>);

impl CodeText {
    fn of(&mut self, code: &JoinCode) -> String {
        match &self.0 {
            Some((kept, text)) if kept == code => text.clone(),
            _ => {
                let text = code.to_string();
                self.0 = Some((code.clone(), text.clone()));
                text
            }
        }
    }
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
        self.joining = None;
        self.located = None;
        self.drop_attempts();
        self.fetches.clear(None);
    }

    /// The app lacks the song of `prepare`: fetch it from the Master.
    pub(crate) fn fetch(&mut self, ctx: &mut Ctx, prepare: maestral_protocol::StreamPrepare) {
        let master = self.master.as_ref().map(|(m, _)| m.clone());
        self.fetches.want(ctx, master.as_ref(), prepare);
    }

    pub(crate) fn stream_done(
        &mut self,
        ctx: &mut Ctx,
        song: maestral_protocol::SongId,
        task: u64,
        outcome: Result<std::sync::Arc<[u8]>, (super::stream::Partial, super::stream::Stop)>,
    ) {
        let master = self.master.as_ref().map(|(m, _)| m.clone());
        self.fetches.finished(ctx, master.as_ref(), song, task, outcome);
    }

    /// Before the thread stops: leaves a session whose link is up.
    pub(crate) fn leave_on_shutdown(&mut self, ctx: &mut Ctx) -> bool {
        if !self.master.as_ref().is_some_and(|(m, _)| ctx.links.contains(m)) {
            return false;
        }
        ctx.local(LocalAction::Leave);
        true
    }

    pub(crate) fn engine_event(&mut self, ctx: &mut Ctx, e: &Event) {
        match e {
            Event::SessionEnded | Event::JoinRejected { .. } => {
                self.master = None;
                self.joining = None;
                self.drop_attempts();
                self.fetches.clear(None);
            }
            Event::StreamClear { song_id } => {
                self.fetches.clear(song_id.as_ref());
                // A next piece waiting for the fetch cleared goes on now.
                let master = self.master.as_ref().map(|(m, _)| m.clone());
                self.fetches.start_waiting(ctx, master.as_ref());
            }
            _ => {}
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
    // The engine owns it (`LocalAction::JoinByCode`): it enters FOLLOWER_JOINING, asks for each
    // attempt (`TransportRequest::JoinByCode`), backs off after a failure and goes back to
    // FOLLOWER_IDLE_LOCAL on a refusal. This side runs one attempt per request and reports how it
    // ended.

    /// Joins with a scanned code (leaving any session first: the engine does that). A session
    /// kept from before is forgotten: this code replaces it.
    pub(crate) fn first_join(&mut self, ctx: &mut Ctx, code: JoinCode) {
        self.master = None;
        self.saved = None;
        ctx.store(|w| w.remove(files::FOLLOWER_SESSION));
        self.told = None;
        self.unreached = false;
        self.located = None;
        let join = LocalAction::JoinByCode {
            session_id: SessionId::new(code.session_id.clone()),
            token: code.token.clone(),
        };
        self.joining = Some(code);
        ctx.local(join);
    }

    /// The certificate of session `session`: the one this device joined it with before (held,
    /// or kept in the state directory), else a new one, kept from now on. Each session its own
    /// certificate (one device is not tracked across sessions).
    fn cert(&mut self, ctx: &mut Ctx, session: &str) -> Option<DtlsCert> {
        if let Some((id, cert)) = &self.cert
            && id == session
        {
            return Some(cert.clone());
        }
        let kept = ctx.cfg.state_dir.as_deref().and_then(|dir| {
            store::load::<SavedIdentity>(dir, files::FOLLOWER_IDENTITY).ok().flatten()
        });
        if let Some(cert) = kept
            .filter(|k| k.session_id == session)
            .and_then(|k| DtlsCert::from_pem(&k.cert_pem).ok())
        {
            self.cert = Some((session.to_owned(), cert.clone()));
            return Some(cert);
        }
        match DtlsCert::generate() {
            Ok(cert) => {
                let identity = SavedIdentity {
                    session_id: session.to_owned(),
                    cert_pem: cert.to_pem().to_owned(),
                };
                ctx.store(|w| w.save(files::FOLLOWER_IDENTITY, &identity));
                self.cert = Some((session.to_owned(), cert.clone()));
                Some(cert)
            }
            Err(e) => {
                ctx.error(SyncError::Join(JoinFailure::Other(format!(
                    "could not make this device's certificate: {e}"
                ))));
                None
            }
        }
    }

    /// The engine wants an attempt of the first join (abandoning any still running). After an
    /// attempt that did not reach the Master, it is asked where it is beside the next, as on a
    /// rejoin: a code scanned before the Master's address changed still finds it
    /// ([`Self::located`]). Only after the Master's proven refusal is there nothing to ask (and
    /// no next attempt).
    pub(crate) fn join_by_code(&mut self, ctx: &mut Ctx) {
        let Some(code) = self.joining.clone() else { return };
        let cert = self.cert(ctx, &code.session_id);
        let attempt = self.drop_attempts();
        let (cfg, me, timeout, tx) =
            (ctx.cfg.rtc, ctx.cfg.device_id.clone(), ctx.cfg.join_timeout, ctx.internal.clone());
        if std::mem::take(&mut self.unreached) {
            locate_beside(ctx, &code, attempt);
        }
        self.try_located(ctx, None, &code, attempt);
        tokio::spawn(async move {
            let result = first_join_link(&cfg, cert.as_ref(), &me, &code, timeout).await;
            let msg = match result {
                Ok((peer, link, events, text)) => {
                    let (first, kind) = (Some(text), ReadyKind::FirstJoin(code));
                    Internal::Ready { peer, link, events, first, kind, attempt }
                }
                Err(error) => Internal::JoinFailed { peer: None, error, attempt },
            };
            super::internal::hand_over(&tx, msg).await;
        });
    }

    /// The engine abandoned the first join (left before it was answered).
    pub(crate) fn cancel_join(&mut self) {
        self.joining = None;
        self.drop_attempts();
    }

    /// The first join's link is up, registered, and the engine told (it named the Master from
    /// it and sent `JOIN_REQUEST`): later rejoins use the same code.
    pub(crate) fn joined(&mut self, master: &DeviceId, code: JoinCode) {
        self.joining = None;
        self.located = None;
        self.master = Some((master.clone(), code));
    }

    /// A join attempt failed. The engine decides what follows: the Master's proven refusal sends
    /// it back to local mode; anything else is retried on its backoff.
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
        let now = ctx.now();
        let Some(master) = master else {
            self.unreached = error.unreached();
            match error.protocol_reason() {
                Some(reason) => ctx.engine.handle_join_refused(now, reason),
                // Nothing else ends a join: only the Master's proven refusal can.
                None => {
                    let text = error.to_string();
                    if self.told.as_deref() != Some(text.as_str()) {
                        // Once a kind: the app shows it; the retries stay quiet.
                        self.told = Some(text);
                        ctx.error(SyncError::JoinRetrying(error));
                    }
                    ctx.engine.handle_join_failed(now, false);
                }
            }
            return;
        };
        match error.protocol_reason() {
            Some(reason) => ctx.engine.handle_join_refused(now, reason),
            // Unreachable, busy, timed out: the engine backs off and tries again.
            None => ctx.link(&master, LinkSignal::Down),
        }
    }

    // ---- what is kept across a restart ----------------------------------------------------------

    /// Rejoins the session kept in the state directory (`--state-dir` alone, or a restarted
    /// window): the page it showed comes back at once, the Master on the usual backoff.
    pub(crate) fn resume(&mut self, ctx: &mut Ctx) {
        let Some(dir) = ctx.cfg.state_dir.clone() else { return };
        let kept = match store::load::<SavedMembership>(&dir, files::FOLLOWER_SESSION) {
            Ok(Some(kept)) => kept,
            Ok(None) => return ctx.error(SyncError::NothingToRejoin { dir }),
            Err(e) => return ctx.error(e),
        };
        let parsed =
            kept.join_code.parse::<JoinCode>().map_err(|e| e.to_string()).and_then(|code| {
                store::check_token(&code.token)?;
                Ok(code)
            });
        let code = match parsed {
            Ok(code) if code.token == kept.session.token => code,
            Ok(_) => {
                let reason = "its join code and token disagree".to_owned();
                let error = state::broken(&dir.join(files::FOLLOWER_SESSION), reason);
                return ctx.error(SyncError::StateFile { name: files::FOLLOWER_SESSION, error });
            }
            Err(reason) => {
                let error = state::broken(&dir.join(files::FOLLOWER_SESSION), reason);
                return ctx.error(SyncError::StateFile { name: files::FOLLOWER_SESSION, error });
            }
        };
        self.joining = None;
        self.told = None;
        // The certificate the Master bound this device's id to (a broken one: the identity
        // file's, else a new one, which the Master refuses for this session).
        let cert = kept.cert_pem.as_deref().and_then(|pem| DtlsCert::from_pem(pem).ok());
        self.cert = cert.map(|c| (code.session_id.clone(), c));
        self.master = Some((kept.session.master.clone(), code));
        let now = ctx.now();
        ctx.engine.resume_follower(now, &kept.session);
        self.saved = Some(kept);
    }

    /// After every input: keeps the session as it now is (the join code, the Master position and
    /// the page shown), or forgets it once the engine has (an end, a refusal, Leave).
    pub(crate) fn save(&mut self, ctx: &mut Ctx) {
        let cert_pem = self.cert.as_ref().map(|(_, c)| c.to_pem().to_owned());
        let code_text = &mut self.code_text;
        let now = ctx.engine.follower_resume().and_then(|session| {
            let (master, code) = self.master.as_ref()?;
            (*master == session.master).then(|| SavedMembership {
                join_code: code_text.of(code),
                session,
                cert_pem,
            })
        });
        if now == self.saved {
            return;
        }
        match &now {
            Some(kept) => ctx.store(|w| w.save(files::FOLLOWER_SESSION, kept)),
            None => ctx.store(|w| w.remove(files::FOLLOWER_SESSION)),
        }
        if !ctx.closing {
            self.saved = now;
        }
    }

    // ---- rejoins -------------------------------------------------------------------------------

    /// The engine wants the link to the Master back: a rejoin with the stored code.
    pub(crate) fn rejoin(&mut self, ctx: &mut Ctx, peer: DeviceId) {
        let Some((master, code)) = self.master.clone().filter(|(m, _)| *m == peer) else {
            return;
        };
        self.attempt_at(ctx, master, code);
    }

    /// One rejoin attempt with `code`. The Master may have moved (a DHCP renewal): it is asked
    /// at once, beside the attempt, which at a vanished address takes until its connect gives
    /// up ([`Self::located`]).
    fn attempt_at(&mut self, ctx: &mut Ctx, master: DeviceId, code: JoinCode) {
        let cert = self.cert(ctx, &code.session_id);
        let attempt = self.drop_attempts();
        let (cfg, me, timeout, tx) =
            (ctx.cfg.rtc, ctx.cfg.device_id.clone(), ctx.cfg.join_timeout, ctx.internal.clone());
        locate_beside(ctx, &code, attempt);
        self.try_located(ctx, Some(master.clone()), &code, attempt);
        tokio::spawn(async move {
            let kind = ReadyKind::Known;
            let msg = match join_link(&cfg, cert.as_ref(), &me, &code, timeout).await {
                Ok((link, events)) => {
                    Internal::Ready { peer: master, link, events, first: None, kind, attempt }
                }
                Err(error) => Internal::JoinFailed { peer: Some(master), error, attempt },
            };
            super::internal::hand_over(&tx, msg).await;
        });
    }

    /// The Master of the session answered (re)join attempt `attempt`'s locate query from
    /// another address (`code.host`): a join there is tried beside that attempt, which goes on
    /// at the old address. Any token holder can answer a locate query, so an answer never stops
    /// the attempt in flight: whichever opens a link first is taken (the other is closed), a
    /// failure there changes nothing, and the join there is checked against the code's
    /// certificate as always. Only an open link makes the stored code take the address
    /// ([`Self::moved`], or [`Self::joined`] on a first join).
    pub(crate) fn located(&mut self, ctx: &mut Ctx, code: JoinCode, attempt: u64) {
        if !self.wants(attempt) {
            return;
        }
        if let Some(joining) = &self.joining {
            if joining.session_id == code.session_id
                && joining.token == code.token
                && joining.host != code.host
            {
                tracing::warn!(
                    "the conductor's device answered from {}: trying there too",
                    code.host
                );
                self.located = Some(code.clone());
                self.beside(ctx, None, code, attempt);
            }
            return;
        }
        let Some((master, stored)) = self.master.clone() else { return };
        if stored.session_id != code.session_id
            || stored.token != code.token
            || stored.host == code.host
            || ctx.links.contains(&master)
        {
            return;
        }
        tracing::warn!("the conductor's device answered from {}: trying there too", code.host);
        self.located = Some(code.clone());
        self.beside(ctx, Some(master), code, attempt);
    }

    /// A join with `code` (at a located address) beside attempt `attempt`, under the same
    /// number: its link is taken if that attempt is still the one wanted; its failure is only
    /// logged. `master`: the Master's id on a rejoin (`None`: a first join, named by its
    /// first message).
    fn beside(&mut self, ctx: &mut Ctx, master: Option<DeviceId>, code: JoinCode, attempt: u64) {
        let cert = self.cert(ctx, &code.session_id);
        let (cfg, me, timeout, tx) =
            (ctx.cfg.rtc, ctx.cfg.device_id.clone(), ctx.cfg.join_timeout, ctx.internal.clone());
        tokio::spawn(async move {
            let host = code.host;
            let msg = match master {
                None => first_join_link(&cfg, cert.as_ref(), &me, &code, timeout).await.map(
                    |(peer, link, events, text)| {
                        let (first, kind) = (Some(text), ReadyKind::FirstJoin(code));
                        Internal::Ready { peer, link, events, first, kind, attempt }
                    },
                ),
                Some(peer) => join_link(&cfg, cert.as_ref(), &me, &code, timeout).await.map(
                    |(link, events)| {
                        let kind = ReadyKind::Moved(code);
                        Internal::Ready { peer, link, events, first: None, kind, attempt }
                    },
                ),
            };
            match msg {
                Ok(msg) => super::internal::hand_over(&tx, msg).await,
                Err(e) => tracing::warn!("the join at the located address {host} failed: {e}"),
            }
        });
    }

    /// Attempt `attempt` (with `code`) also tries where a locate answer said the Master is.
    fn try_located(
        &mut self,
        ctx: &mut Ctx,
        master: Option<DeviceId>,
        code: &JoinCode,
        attempt: u64,
    ) {
        if let Some(there) = self.located.clone().filter(|l| {
            l.session_id == code.session_id && l.token == code.token && l.host != code.host
        }) {
            self.beside(ctx, master, there, attempt);
        }
    }

    /// A link of the wanted attempt was taken: any other result of it (the join at a located
    /// address beside it, or the other way round) is closed when it comes.
    pub(crate) fn settled(&mut self) {
        self.drop_attempts();
        self.located = None;
    }

    /// A rejoin at a located address opened: the stored code names it from now on.
    pub(crate) fn moved(&mut self, code: JoinCode) {
        self.located = None;
        if let Some((_, stored)) = self.master.as_mut()
            && stored.session_id == code.session_id
            && stored.host != code.host
        {
            tracing::warn!("the conductor's device moved to {}", code.host);
            stored.host = code.host;
        }
    }
}

/// Asks, beside join attempt `attempt`, where the Master of `code`'s session is; an answer from
/// another address comes back as [`Internal::Located`].
fn locate_beside(ctx: &Ctx, code: &JoinCode, attempt: u64) {
    let (ask, found, asking) = (ctx.cfg.locate, ctx.internal.clone(), code.clone());
    tokio::spawn(async move {
        if let Some(host) = super::locate::find(&asking, ask).await {
            let code = JoinCode { host, ..asking };
            let _ = found.send(Internal::Located { code, attempt });
        }
    });
}

/// A first join's link: [`join_link`], then the Master's first message (its `HELLO`), which
/// names it: `(its id, the link, its events, that message)`.
async fn first_join_link(
    cfg: &RtcConfig,
    cert: Option<&DtlsCert>,
    me: &DeviceId,
    code: &JoinCode,
    timeout: Duration,
) -> Result<(DeviceId, Link, mpsc::UnboundedReceiver<LinkEvent>, String), JoinFailure> {
    let (link, mut events) = join_link(cfg, cert, me, code, timeout).await?;
    match first_text(&mut events, timeout).await {
        Some((sender, text)) => Ok((sender, link, events, text)),
        None => {
            link.close().await;
            let why = "the conductor's device connected but never introduced itself";
            Err(JoinFailure::Other(why.into()))
        }
    }
}

/// Offer → `POST /v1/join` → check the answer's fingerprint against the join code → open.
async fn join_link(
    cfg: &RtcConfig,
    cert: Option<&DtlsCert>,
    me: &DeviceId,
    code: &JoinCode,
    timeout: Duration,
) -> Result<(Link, mpsc::UnboundedReceiver<LinkEvent>), JoinFailure> {
    let callee =
        Callee { host: code.host, fingerprint: &code.fingerprint, who: "the conductor's device" };
    let body = |offer| JoinRequestBody {
        session_id: code.session_id.clone(),
        token: code.token.clone(),
        device_id: me.to_string(),
        offer,
    };
    dial(cfg, cert, callee, body, timeout).await
}
