//! One METADATA frame handed to every client a few at a time (net thread).
//!
//! Design: the frame describes every user, so sending it to every client at once is
//! O(N²) bytes in one go (2.4 MB at 128 clients), milliseconds in which the net thread
//! reads nobody's audio. Handed out a few clients per mix period instead, the same bytes
//! cost tens of microseconds a period, well inside the jitter buffers' margin, and every
//! client still gets one frame per cadence: at [`PER_PERIOD`] clients a period, 1500
//! clients fit in the 500 ms cadence at 64-frame periods.

/// Clients sent the frame per mix period.
pub const PER_PERIOD: usize = 4;

/// The frame being handed out and the clients still due it.
///
/// # Example
/// ```
/// use izyrt::hub::fanout::Fanout;
/// let mut f = Fanout::default();
/// f.start(vec![1, 2, 3], [4, 7, 9]);
/// assert_eq!(f.next_client(), Some(4));
/// assert_eq!(f.frame(), &mut [1, 2, 3]);
/// assert_eq!((f.next_client(), f.next_client(), f.next_client()), (Some(7), Some(9), None));
/// ```
#[derive(Debug, Default)]
pub struct Fanout {
    frame: Vec<u8>,
    /// Due clients, the next one last.
    due: Vec<usize>,
}

impl Fanout {
    /// Starts handing out `frame` to `clients`, in their order. A newer frame replaces
    /// one still being handed out: the clients not served yet get the newer one.
    pub fn start(&mut self, frame: Vec<u8>, clients: impl IntoIterator<Item = usize>) {
        self.frame = frame;
        self.due.clear();
        self.due.extend(clients);
        self.due.reverse();
    }

    /// The next client due the frame, if any.
    pub fn next_client(&mut self) -> Option<usize> {
        self.due.pop()
    }

    /// Clients still due the frame.
    pub fn pending(&self) -> usize {
        self.due.len()
    }

    /// The frame (each link rewrites its header's seq in place).
    pub fn frame(&mut self) -> &mut [u8] {
        &mut self.frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_gets_the_newest_frame_once() {
        let mut f = Fanout::default();
        f.start(vec![1], 0..10);
        let first: Vec<usize> = std::iter::from_fn(|| f.next_client())
            .take(PER_PERIOD)
            .collect();
        assert_eq!(first, [0, 1, 2, 3]);
        assert_eq!(f.pending(), 6);
        // A newer frame before the rest were served: everyone is due the newer one.
        f.start(vec![2], 0..10);
        assert_eq!(f.frame(), &[2]);
        let all: Vec<usize> = std::iter::from_fn(|| f.next_client()).collect();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!((f.next_client(), f.pending()), (None, 0));
    }
}
