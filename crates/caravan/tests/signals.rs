//! Stopping: SIGTERM (what `docker stop` and systemd send) ends `caravan
//! demo` and `caravan cluster up` as cleanly as Ctrl-C, and their nodes
//! never outlive them, not even when they are killed with SIGKILL.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long nodes may take to notice and stop.
const GRACE: Duration = Duration::from_secs(30);

#[test]
fn the_demo_stops_on_sigterm_and_on_sigkill_its_nodes_stop_with_it() {
    for signal in [Signal::SIGTERM, Signal::SIGKILL] {
        let mut demo = support::Demo::start();
        let nodes = demo.node_pids();
        assert_eq!(nodes.len(), 6, "{nodes:?}");
        assert!(nodes.iter().all(|&pid| support::runs(pid)), "every node runs before");
        kill(Pid::from_raw(demo.pid() as i32), signal).unwrap();
        assert!(demo.ended_within(GRACE), "the demo ended on {signal}");
        assert_eq!(support::survivors(&nodes, GRACE), Vec::<u32>::new(), "nodes left running after {signal}");
    }
}

#[test]
fn cluster_up_stops_on_sigterm_and_on_sigkill_its_nodes_stop_with_it() {
    for signal in [Signal::SIGTERM, Signal::SIGKILL] {
        let dir = tempfile::tempdir().unwrap();
        let graph = dir.path().join("graph.txt");
        std::fs::write(&graph, "0 1\n1 2\n").unwrap();
        let base = (40_000u16..60_000)
            .step_by(89)
            .find(|&base| (0..6).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()))
            .expect("free ports");
        let mut up = Command::new(env!("CARGO_BIN_EXE_caravan"))
            .args(["cluster", "up", "--graph"])
            .arg(&graph)
            .arg("--dir")
            .arg(dir.path().join("cluster"))
            .args(["--base-port", &base.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
        let ready = lines.by_ref().map_while(Result::ok).any(|line| line.starts_with("all 3 nodes ready"));
        assert!(ready, "cluster up came up");
        // Keep draining its output, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let nodes = support::node_pids(&dir.path().join("cluster"));
        assert_eq!(nodes.len(), 3, "{nodes:?}");

        kill(Pid::from_raw(up.id() as i32), signal).unwrap();
        assert!(support::ended_within(&mut up, GRACE), "cluster up ended on {signal}");
        assert_eq!(support::survivors(&nodes, GRACE), Vec::<u32>::new(), "nodes left running after {signal}");
    }
}
