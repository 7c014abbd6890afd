//! What the panel says: a performer's words for the phases and link states of docs/behaviour.md §10
//! (their names stay in the headless output).

use maestral_sync::{LinkState, Phase};

/// Under a join code: what every phone in the room needs before it can open it.
pub const SAME_WIFI: &str =
    "Phones join with their camera: they must be on the same Wi-Fi as this device.";

/// One line for where this device stands. `partner`: the Solo partner's or the Master's name,
/// where known; `members`: a Master's joined Followers.
pub fn phase(phase: Option<Phase>, partner: Option<&str>, members: usize) -> String {
    let partner = partner.unwrap_or("the other device");
    let singers = match members {
        0 => "nobody has joined yet".to_owned(),
        1 => "1 singer in".to_owned(),
        n => format!("{n} singers in"),
    };
    match phase {
        None => "Starting…".into(),
        Some(Phase::SoloLocalOnly) => "Playing alone".into(),
        Some(Phase::SoloPairedConnected) => format!("Paired with {partner}"),
        Some(Phase::SoloPairedDegraded) => format!("Paired with {partner} (the link is unsteady)"),
        Some(Phase::SoloPairedReconnecting) => format!("Reconnecting to {partner}…"),
        Some(Phase::MasterIdle) => "Opening the session…".into(),
        Some(Phase::MasterSessionActive) => format!("Session open: {singers}"),
        Some(Phase::MasterReconnectingLinks) => {
            format!("Session open: {singers}, some reconnecting")
        }
        Some(Phase::MasterSessionEnded) => "The session has ended".into(),
        Some(Phase::FollowerIdleLocal) => "Not in a session".into(),
        Some(Phase::FollowerJoining) => "Joining the session…".into(),
        Some(Phase::FollowerConnectedFollow) => "Connected to the Master, following".into(),
        Some(Phase::FollowerConnectedFree) => "Connected to the Master, browsing freely".into(),
        Some(Phase::FollowerDisconnectedLocal) => {
            "Lost the Master: showing your own page until it comes back".into()
        }
        Some(Phase::FollowerRejoining) => "Reconnecting…".into(),
    }
}

/// A link's state, as a few words.
pub fn link(state: LinkState) -> &'static str {
    match state {
        LinkState::Idle => "not connected",
        LinkState::Connecting => "connecting…",
        LinkState::Connected => "connected",
        LinkState::Degraded => "unsteady link",
        LinkState::Reconnecting => "reconnecting…",
        LinkState::Ended => "gone",
    }
}

/// A Follower is connected to its Master (follow or free).
pub fn follower_connected(phase: Option<Phase>) -> bool {
    matches!(phase, Some(Phase::FollowerConnectedFollow | Phase::FollowerConnectedFree))
}

/// A Master's session is open (its code works).
pub fn session_open(phase: Option<Phase>) -> bool {
    matches!(phase, Some(Phase::MasterSessionActive | Phase::MasterReconnectingLinks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_spec_name_reaches_the_panel() {
        let phases = [
            Phase::SoloLocalOnly,
            Phase::SoloPairedConnected,
            Phase::SoloPairedDegraded,
            Phase::SoloPairedReconnecting,
            Phase::MasterIdle,
            Phase::MasterSessionActive,
            Phase::MasterReconnectingLinks,
            Phase::MasterSessionEnded,
            Phase::FollowerIdleLocal,
            Phase::FollowerJoining,
            Phase::FollowerConnectedFollow,
            Phase::FollowerConnectedFree,
            Phase::FollowerDisconnectedLocal,
            Phase::FollowerRejoining,
        ];
        for p in phases {
            let words = phase(Some(p), Some("Anna's tablet"), 3);
            assert!(!words.contains('_'), "{words:?} is a spec name");
            assert_ne!(words, p.as_str());
        }
        assert_eq!(
            phase(Some(Phase::SoloPairedConnected), Some("Anna's tablet"), 0),
            "Paired with Anna's tablet"
        );
        assert_eq!(phase(Some(Phase::MasterSessionActive), None, 1), "Session open: 1 singer in");
    }
}
