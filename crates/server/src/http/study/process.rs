//! One run's server: a fresh `arenapool serve --protocol http` process,
//! its memory read from `/proc/<pid>/status`, stopped with `SIGINT`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{Case, StudyConfig, StudyError};
use crate::http::{HttpMode, HttpReport};
use crate::rss;

/// A server process of one run.
pub(super) struct ServerProcess {
    child: Child,
    pub(super) addr: SocketAddr,
    report: PathBuf,
    output: mpsc::Receiver<String>,
}

impl ServerProcess {
    pub(super) fn start(
        config: &StudyConfig,
        case: Case,
        tag: &str,
    ) -> Result<ServerProcess, StudyError> {
        let fail = |why: String| StudyError::Server {
            mode: case.mode,
            why,
        };
        let report = config.scratch.join(format!("serve-{tag}.json"));
        let _ = std::fs::remove_file(&report);
        let max = case.connections + case.idle + 1000;
        // A cap on its life, should this process die without stopping it.
        let cap = config.duration.as_secs() + 120;
        let mut child = Command::new(&config.exe)
            .args(["serve", "--protocol", "http", "--bind", "127.0.0.1:0"])
            .args(["--mode", mode_name(case.mode)])
            .args(["--workers", &config.workers.to_string()])
            .args(["--max-connections", &max.to_string()])
            .args(["--duration", &cap.to_string()])
            .arg("--json")
            .arg(&report)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("{}: {e}", config.exe.display())))?;
        let (tx, output) = mpsc::channel();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match output.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = listening_address(&line) {
                        break addr;
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(fail(format!(
                        "it did not say where it listens: {}",
                        seen.join(" | ")
                    )));
                }
            }
        };
        Ok(ServerProcess {
            child,
            addr,
            report,
            output,
        })
    }

    pub(super) fn status_kib(&self, field: &str) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        rss::parse_status_kib(&text, field)
    }

    /// How long a server may take to stop (under valgrind, seconds).
    const STOP_TIMEOUT: Duration = Duration::from_secs(60);

    /// Stops it with SIGINT and reads its report.
    pub(super) fn stop(mut self, mode: HttpMode) -> Result<HttpReport, StudyError> {
        let fail = |why: String| StudyError::Server { mode, why };
        let pid = rustix::process::Pid::from_raw(self.child.id().cast_signed())
            .ok_or_else(|| fail("no process id".into()))?;
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        let deadline = Instant::now() + Self::STOP_TIMEOUT;
        let status = loop {
            match self.child.try_wait().map_err(|e| fail(e.to_string()))? {
                Some(status) => break status,
                None if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                None => {
                    // Dropping `self` kills it.
                    return Err(fail(format!(
                        "it did not stop within {} s of SIGINT",
                        Self::STOP_TIMEOUT.as_secs()
                    )));
                }
            }
        };
        // What it printed last: the reader threads end with its pipes.
        let rest: Vec<String> = self.output.iter().collect();
        if !status.success() {
            // A server that fails on the way out (an error, or a checker
            // such as valgrind it runs under) fails the run.
            let start = rest.len().saturating_sub(20);
            return Err(fail(format!(
                "it exited with {status}: {}",
                rest[start..].join(" | ")
            )));
        }
        let text = std::fs::read_to_string(&self.report).map_err(|e| {
            fail(format!(
                "no report in {} ({e}); it exited with {status}: {}",
                self.report.display(),
                rest.join(" | ")
            ))
        })?;
        serde_json::from_str(&text).map_err(|e| fail(format!("its report: {e}")))
    }
}

impl Drop for ServerProcess {
    /// A server not stopped (an error on the way, a panic) is killed,
    /// not left running until its `--duration` cap.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(super) fn mode_name(mode: HttpMode) -> &'static str {
    match mode {
        HttpMode::Pool => "pool",
        HttpMode::Vec => "vec",
        HttpMode::Uring => "uring",
        HttpMode::Hyper => "hyper",
    }
}

/// The address in the server's "HTTP on http://ADDR" line.
fn listening_address(line: &str) -> Option<SocketAddr> {
    let rest = line.split_once("HTTP on http://")?.1;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_address() {
        let line = "arenapool: HTTP on http://127.0.0.1:40123 (Pool mode, 2 workers, at most 10000 connections); Ctrl-C stops";
        assert_eq!(
            listening_address(line),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(listening_address("arenapool: open-file limit 20000"), None);
    }
}
