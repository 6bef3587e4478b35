//! Worker start-up, shared by the UDP and HTTP servers.

use std::io;
use std::sync::mpsc;

/// Waits until `n` workers have each sent their start-up result on `rx`.
/// On the first failure: what failed, and why.
pub(crate) fn wait_ready(
    rx: &mpsc::Receiver<io::Result<()>>,
    n: usize,
) -> Result<(), (&'static str, io::Error)> {
    for _ in 0..n {
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(("starting a worker's runtime", e)),
            Err(_) => {
                return Err((
                    "starting a worker",
                    io::Error::other("a worker thread exited during start-up"),
                ));
            }
        }
    }
    Ok(())
}
