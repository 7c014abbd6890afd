//! Reading: standard input line by line on its own thread (waking the app after each line),
//! into a channel the command system drains.

use std::io::BufRead;

use bevy::prelude::*;
use crossbeam_channel::Receiver;

use super::parse::COMMANDS;
use crate::wake::Waker;

/// One line from the controller, or the end of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlLine {
    Line(String),
    /// A line that could not be taken as a command (it is not UTF-8 text): one `error` event,
    /// and reading goes on.
    Unreadable(String),
    Closed,
}

/// Where commands come from: standard input (read on its own thread), or a test's channel.
#[derive(Resource, Debug)]
pub struct ControlInput(pub(super) Receiver<ControlLine>);

impl ControlInput {
    /// Reads standard input line by line on a thread, waking the app after each line.
    pub fn stdin(waker: Waker) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        let spawned = std::thread::Builder::new().name("maestral-stdin".into()).spawn(move || {
            let stdin = std::io::stdin();
            read_lines(stdin.lock(), |line| {
                let sent = tx.send(line).is_ok();
                waker.wake();
                sent
            });
        });
        if let Err(error) = spawned {
            error!("could not read standard input ({error}); no commands will be taken");
        }
        ControlInput(rx)
    }

    /// A channel to feed lines by hand (tests).
    #[cfg(feature = "test-support")]
    pub fn channel() -> (Self, crossbeam_channel::Sender<ControlLine>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (ControlInput(rx), tx)
    }
}

/// Reads `input` line by line into `send` (which says whether anyone still listens). A line
/// that is not UTF-8 becomes [`ControlLine::Unreadable`] and reading goes on; the end of the
/// input or an I/O error sends [`ControlLine::Closed`].
pub fn read_lines(mut input: impl BufRead, mut send: impl FnMut(ControlLine) -> bool) {
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                warn!("could not read standard input ({error}); no more commands will be taken");
                break;
            }
        }
        number += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let line = match std::str::from_utf8(&buf) {
            Ok(text) => ControlLine::Line(text.to_owned()),
            Err(error) => ControlLine::Unreadable(format!(
                "input line {number} is not UTF-8 text (bad byte at {}); it was ignored — send commands as UTF-8 lines: {COMMANDS}",
                error.valid_up_to()
            )),
        };
        if !send(line) {
            return;
        }
    }
    send(ControlLine::Closed);
}
