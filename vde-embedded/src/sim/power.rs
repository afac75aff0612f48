//! [`PowerSwitch`]: the power state shared by the simulated NOR and NAND parts.
//!
//! Owns the operation counter and the cut state machine: `On` → `arm(k)` → `Armed(k)`; each
//! operation that reaches the medium counts one and steps `Armed(n)` to `Armed(n - 1)`; the one
//! begun at `Armed(0)` is the cut one, after which the state is `Lost` until `reboot`.
//! Invariant: the counter only grows (saturating), except when a simulator restarts it.

use super::OpKind;

/// Power state of a simulated part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) enum Power {
    /// Powered, no cut pending.
    On,
    /// Powered; after this many more operations complete, the next one is cut.
    Armed(u64),
    /// Power lost: everything fails until reboot.
    Lost,
}

/// The operation counter and power-cut state of one simulated part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) struct PowerSwitch {
    pub(crate) power: Power,
    ops: u64,
    cut_kind: Option<OpKind>,
}

impl PowerSwitch {
    /// Powered, nothing counted, no cut armed.
    pub(crate) const fn new() -> Self {
        PowerSwitch {
            power: Power::On,
            ops: 0,
            cut_kind: None,
        }
    }

    /// Operations that reached the medium.
    pub(crate) fn op_count(&self) -> u64 {
        self.ops
    }

    /// Starts over: power on, no cut, the counter set to `ops`.
    pub(crate) fn restart(&mut self, ops: u64) {
        *self = PowerSwitch::new();
        self.ops = ops;
    }

    /// Arms a cut after `after_ops` more operations; ignored while power is lost.
    pub(crate) fn arm(&mut self, after_ops: u64) {
        if self.power != Power::Lost {
            self.power = Power::Armed(after_ops);
        }
    }

    /// Cancels an armed cut (no effect once power is lost).
    pub(crate) fn disarm(&mut self) {
        if let Power::Armed(_) = self.power {
            self.power = Power::On;
        }
    }

    /// Operations still to complete before the armed cut, if one is armed.
    pub(crate) fn armed(&self) -> Option<u64> {
        match self.power {
            Power::Armed(n) => Some(n),
            _ => None,
        }
    }

    /// Whether power is lost.
    pub(crate) fn lost(&self) -> bool {
        self.power == Power::Lost
    }

    /// The kind of operation the last cut interrupted, until [`reboot`](Self::reboot).
    pub(crate) fn cut_kind(&self) -> Option<OpKind> {
        self.cut_kind
    }

    /// Restores power; no cut armed.
    pub(crate) fn reboot(&mut self) {
        self.power = Power::On;
        self.cut_kind = None;
    }

    /// Counts an operation of `kind` that reached the medium. Returns its number, and whether
    /// it is the one the armed cut interrupts.
    pub(crate) fn begin(&mut self, kind: OpKind) -> (u64, bool) {
        let op = self.ops;
        self.ops = self.ops.saturating_add(1);
        let cut = match self.power {
            Power::Armed(0) => {
                self.power = Power::Lost;
                self.cut_kind = Some(kind);
                true
            }
            Power::Armed(n) => {
                self.power = Power::Armed(n - 1);
                false
            }
            Power::On | Power::Lost => false,
        };
        (op, cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armed_cut_lands_on_the_kth_operation() {
        let mut p = PowerSwitch::new();
        p.arm(2);
        assert_eq!(p.begin(OpKind::Read), (0, false));
        assert_eq!(p.begin(OpKind::Read), (1, false));
        assert_eq!(p.armed(), Some(0));
        assert_eq!(p.begin(OpKind::Erase), (2, true));
        assert!(p.lost());
        assert_eq!(p.cut_kind(), Some(OpKind::Erase));
        p.arm(0);
        assert!(p.lost(), "arming while power is lost is ignored");
        p.reboot();
        assert!(!p.lost());
        assert_eq!(p.cut_kind(), None);
        assert_eq!(p.op_count(), 3);
        p.arm(5);
        p.disarm();
        assert_eq!(p.armed(), None);
        p.restart(7);
        assert_eq!(p.begin(OpKind::Program), (7, false));
    }
}
