//! Page arithmetic, the one rule for every turn (docs/behaviour.md §5.1): how far a turn
//! moves, and which page of the shared position this device shows. The app calls it for its
//! instant local update; the engine uses the same functions, so the two never disagree.

use maestral_protocol::{DeviceId, Layout, Parity};

/// A page turn, as the performer asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Turn {
    Next,
    Prev,
    First,
    Last,
    /// A page index, counted from 0.
    To(u32),
}

/// How this device's page follows the position: the pages one turn moves (`step`: 1, or 2 for a
/// spread), and which page of a spread this device shows (`half`: 0 the first, 1 the second).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pager {
    step: u32,
    half: u32,
}

impl Default for Pager {
    fn default() -> Self {
        Pager::SINGLE
    }
}

impl Pager {
    /// One page at a time: a device alone, a Master, a Follower.
    pub const SINGLE: Pager = Pager { step: 1, half: 0 };
    /// Both pages of a spread on this device (a two-page layout): the position is the spread's
    /// first page.
    pub const SPREAD: Pager = Pager { step: 2, half: 0 };

    /// A device paired in Solo: the shared position is a spread, and this device shows its half.
    /// With parity `odd` the leader shows the spread's first page, with `even` its second; the
    /// partner shows the other. A layout naming a third device (an old partner) still splits
    /// the spread: then the higher of the two ids leads, which both devices compute alike.
    pub fn solo(layout: &Layout, me: &DeviceId, partner: &DeviceId) -> Pager {
        let lead = &layout.leader_device_id;
        let leader = lead == me || (lead != partner && me > partner);
        let first = leader == (layout.parity == Parity::Odd);
        Pager { step: 2, half: u32::from(!first) }
    }

    /// Pages one turn moves.
    pub fn step(self) -> u32 {
        self.step
    }

    /// Whether this device shows the second page of each spread (the even page, counted from 1).
    pub fn shows_second(self) -> bool {
        self.half == 1
    }

    /// The shared position `page` belongs to: its spread's first page (or the page itself).
    pub fn position(self, page: u32) -> u32 {
        page - page % self.step
    }

    /// The page this device shows at the shared position `position`.
    pub fn page(self, position: u32) -> u32 {
        self.position(position).saturating_add(self.half)
    }

    /// The page a turn leads to from the shown `page`, or `None` where it goes nowhere (already
    /// there, or past the end). `count` is the score's page count where known. A spread keeps
    /// this device's place in it.
    pub fn turn(self, page: u32, turn: Turn, count: Option<u32>) -> Option<u32> {
        let step = self.step;
        let spread = self.position(page);
        // The first page of the last spread (or the last page), when the count is known.
        let last_start = count.map(|c| self.position(c.saturating_sub(1)));
        let target_start = match turn {
            Turn::Next => {
                let next = spread.checked_add(step)?;
                if last_start.is_some_and(|last| next > last) {
                    return None;
                }
                next
            }
            Turn::Prev => spread.checked_sub(step)?,
            Turn::First => 0,
            Turn::Last => last_start?,
            Turn::To(p) => self.position(count.map_or(p, |c| p.min(c.saturating_sub(1)))),
        };
        let target = self.page(target_start);
        (target != page).then_some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(leader: &str, parity: Parity) -> Layout {
        Layout { leader_device_id: DeviceId::new(leader), parity }
    }

    #[test]
    fn single_pages_turn_one_at_a_time_and_stop_at_the_ends() {
        let p = Pager::SINGLE;
        assert_eq!(p.turn(0, Turn::Next, Some(3)), Some(1));
        assert_eq!(p.turn(2, Turn::Next, Some(3)), None, "past the end");
        assert_eq!(p.turn(0, Turn::Prev, Some(3)), None, "before the start");
        assert_eq!(p.turn(1, Turn::Last, Some(3)), Some(2));
        assert_eq!(p.turn(1, Turn::To(99), Some(3)), Some(2), "clamped to the last page");
        assert_eq!(p.turn(1, Turn::To(1), Some(3)), None, "already there");
        assert_eq!(p.turn(5, Turn::Next, None), Some(6), "unknown length: no end");
    }

    #[test]
    fn spreads_move_by_two_and_keep_the_half() {
        let first = Pager::SPREAD;
        assert_eq!(first.turn(0, Turn::Next, Some(11)), Some(2));
        assert_eq!(first.turn(9, Turn::To(9), Some(11)), Some(8), "a spread starts even");
        let second = Pager { step: 2, half: 1 };
        assert_eq!(second.turn(3, Turn::Next, Some(11)), Some(5));
        assert_eq!(second.turn(3, Turn::First, Some(11)), Some(1));
        assert_eq!(second.turn(3, Turn::Last, Some(11)), Some(11), "the last spread's half");
        assert_eq!(second.turn(5, Turn::To(2), None), Some(3));
        assert_eq!(second.page(6), 7);
        assert_eq!(second.position(7), 6);
    }

    #[test]
    fn solo_halves_are_complementary_whoever_leads() {
        let (a, b) = (DeviceId::new("A"), DeviceId::new("B"));
        for parity in [Parity::Odd, Parity::Even] {
            for leader in ["A", "B", "Z-old-partner"] {
                let l = layout(leader, parity);
                let (pa, pb) = (Pager::solo(&l, &a, &b), Pager::solo(&l, &b, &a));
                assert_ne!(pa.shows_second(), pb.shows_second(), "{leader} {parity:?}");
                assert_eq!((pa.step(), pb.step()), (2, 2));
            }
        }
        // The leader with `odd` shows the spread's first page (the odd page counted from 1).
        assert!(!Pager::solo(&layout("A", Parity::Odd), &a, &b).shows_second());
        assert!(Pager::solo(&layout("A", Parity::Even), &a, &b).shows_second());
        // A stale leader: the higher id leads.
        assert!(!Pager::solo(&layout("Z", Parity::Odd), &b, &a).shows_second());
    }
}
