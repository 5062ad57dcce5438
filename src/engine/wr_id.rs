//! The `wr_id` layout, written down once:
//!
//! ```text
//!  63        48 47                                   0
//! +------------+--------------------------------------+
//! | QP in lane |   sequence number of the WR on that QP |
//! +------------+--------------------------------------+
//! ```
//! 16 bits of QP index (a lane holds at most 256 QPs) and 48 bits of
//! sequence: at 100 M WRs/s the sequence wraps after 32 days.

/// A packed work request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrId(pub u64);

const SEQ_BITS: u32 = 48;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

impl WrId {
    /// Packs a QP index and a sequence number.
    #[inline]
    pub fn new(qp_index: usize, seq: u64) -> WrId {
        WrId(((qp_index as u64) << SEQ_BITS) | (seq & SEQ_MASK))
    }

    /// The QP index within the lane.
    #[inline]
    pub fn qp_index(self) -> usize {
        (self.0 >> SEQ_BITS) as usize
    }

    /// The sequence number.
    #[inline]
    pub fn seq(self) -> u64 {
        self.0 & SEQ_MASK
    }
}

#[cfg(test)]
mod tests {
    use super::WrId;

    #[test]
    fn packs_and_unpacks() {
        let id = WrId::new(255, 123_456_789);
        assert_eq!(id.qp_index(), 255);
        assert_eq!(id.seq(), 123_456_789);
        assert_eq!(WrId::new(3, (1 << 48) + 5).seq(), 5);
    }
}
