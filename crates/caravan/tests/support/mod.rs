//! A `caravan demo` run for the end-to-end tests: started on free ports,
//! ready once it prints its URL, stopped with Ctrl-C when dropped.

#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Demo {
    child: Child,
    dir: tempfile::TempDir,
    /// The first agency's web address, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Each member's web address by the name the demo prints.
    pub members: BTreeMap<String, String>,
}

/// Ports a demo of six members takes from its base.
const DEMO_PORTS: u16 = 12;

impl Demo {
    pub fn start() -> Demo {
        let base = (20_000u16..40_000)
            .step_by(97)
            .find(|&base| (0..DEMO_PORTS).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()))
            .expect("free ports");
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_caravan"))
            .args(["demo", "--http", &format!("127.0.0.1:{base}"), "--dir"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Read its output on a thread, to the end: a demo whose stdout
        // closed would fail its next line. Lines come through a channel so
        // a demo that stops talking is noticed at the deadline.
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (lines, receiver) = std::sync::mpsc::sync_channel::<String>(256);
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                // Nobody listens after the start; keep draining anyway.
                let _ = lines.try_send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut members = BTreeMap::new();
        let mut url = None;
        while url.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match receiver.recv_timeout(left) {
                Ok(line) => line,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("the demo did not come up within two minutes");
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            // "  Alpine Hotels     http://127.0.0.1:PORT/"
            if let Some((name, address)) = line.trim().rsplit_once(' ').filter(|(_, a)| a.starts_with("http://")) {
                members.insert(name.trim().to_owned(), address.trim_end_matches('/').to_owned());
            }
            if let Some(rest) = line.strip_prefix("Open ") {
                url = rest.split_whitespace().next().map(|u| u.trim_end_matches('/').to_owned());
            }
        }
        let url = url.expect("the demo ended before it was ready");
        Demo { child, dir, url, members }
    }

    /// The demo's own process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its nodes' processes, as it recorded them.
    pub fn node_pids(&self) -> Vec<u32> {
        node_pids(self.dir.path())
    }

    /// Whether the demo ended within `within`.
    pub fn ended_within(&mut self, within: Duration) -> bool {
        ended_within(&mut self.child, within)
    }

    /// The web address of the member the demo names `name`.
    pub fn member(&self, name: &str) -> &str {
        self.members.get(name).unwrap_or_else(|| panic!("no member {name:?} in {:?}", self.members))
    }

    /// The mails the first agency has written to its outbox.
    pub fn agency_mails(&self) -> Vec<String> {
        let outbox: PathBuf = self.dir.path().join("node-0").join(caravan_node::OUTBOX_DIR);
        let mut files: Vec<_> =
            std::fs::read_dir(outbox).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        files.sort();
        files.iter().filter_map(|path| std::fs::read_to_string(path).ok()).collect()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        // It stops its nodes and exits; if it does not within a while, kill it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `child` ended within `within`.
pub fn ended_within(child: &mut Child, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if !matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The node processes a cluster directory records (`cluster.json`).
pub fn node_pids(cluster_dir: &std::path::Path) -> Vec<u32> {
    let text = std::fs::read_to_string(cluster_dir.join("cluster.json")).expect("cluster.json");
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    state["members"].as_array().unwrap().iter().map(|m| m["pid"].as_u64().unwrap() as u32).collect()
}

/// Whether process `pid` still runs (a zombie, ended but not yet reaped,
/// does not).
pub fn runs(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The processes of `pids` still running after `within`.
pub fn survivors(pids: &[u32], within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let running: Vec<u32> = pids.iter().copied().filter(|&pid| runs(pid)).collect();
        if running.is_empty() || Instant::now() >= deadline {
            return running;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Tomorrow's date, as the demo's calendar has it.
pub fn tomorrow() -> caravan_model::Date {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    caravan_model::Timestamp(now_ms).date().add_days(1)
}
