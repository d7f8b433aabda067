//! An owner's replica group as real processes on loopback.
//!
//! - Two machines join a running node with `caravan group join` (a copy
//!   of its key, their own ids); `caravan group status` shows the three;
//!   one leaves with `caravan group leave`.
//! - Under a race for the last rooms, the leader is killed with SIGKILL
//!   (`caravan bench failover`): every acknowledged hold survives on both
//!   survivors, nothing is sold twice, and holds are taken again.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_caravan");
/// Every node's admin API token in these tests.
const TOKEN: [u8; 32] = [7; 32];

fn token() -> String {
    caravan_accounts::token::Secret::from_bytes(TOKEN).reveal()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A node process, killed when dropped.
struct Proc {
    http: SocketAddr,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn url(&self) -> String {
        format!("http://{}", self.http)
    }
}

/// Readies `dir` as a node with the tests' admin token.
fn prepare(dir: &Path, key: Option<&Path>) {
    if let Some(key) = key {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(key, dir.join(caravan_node::identity::KEY_FILE)).unwrap();
    }
    caravan_node::init(dir).unwrap();
    let conn = caravan_store::open_writer(&dir.join(caravan_store::DB_FILE)).unwrap();
    let secret = caravan_accounts::token::Secret::from_bytes(TOKEN);
    let now = caravan_model::Timestamp(0);
    caravan_node::accounts::install_admin_token(&conn, "admin@example.org", &secret, "tests", now).unwrap();
}

fn spawn(dir: &Path, args: &[&str]) -> Proc {
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let p2p = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let log = std::fs::File::create(dir.with_extension("log")).unwrap();
    let child = Command::new(EXE)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .args(["--http", &http.to_string(), "--p2p", &p2p])
        .env("RUST_LOG", "info")
        .env("CARAVAN_TOKEN", token())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("caravan starts");
    Proc { http, child }
}

fn caravan(args: &[&str]) -> Output {
    Command::new(EXE).args(args).env("CARAVAN_TOKEN", token()).output().expect("caravan runs")
}

async fn group_of(client: &reqwest::Client, node: &Proc) -> Value {
    let request = client.get(format!("{}/api/v1/group", node.url())).bearer_auth(token());
    match request.send().await {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn voters(group: &Value) -> usize {
    group["members"].as_array().map_or(0, |members| members.iter().filter(|m| m["voter"] == true).count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_join_a_running_node_with_the_cli_and_leave_it() {
    let root = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let first_dir = root.path().join("first");
    prepare(&first_dir, None);
    let first = spawn(&first_dir, &["node", "run"]);
    wait_until("the first node answers", Duration::from_secs(30), async || {
        group_of(&client, &first).await["role"] == "leader"
    })
    .await;

    let key = first_dir.join(caravan_node::identity::KEY_FILE);
    let mut joined = Vec::new();
    for name in ["second", "third"] {
        let dir = root.path().join(name);
        prepare(&dir, Some(&key));
        joined.push(spawn(&dir, &["group", "join", "--via", &first.url()]));
        let want = joined.len() + 1;
        wait_until("the group adds the new member", Duration::from_secs(60), async || {
            voters(&group_of(&client, &first).await) == want
        })
        .await;
    }
    for node in &joined {
        wait_until("a joined member follows", Duration::from_secs(30), async || {
            let group = group_of(&client, node).await;
            group["role"] == "follower" && voters(&group) == 3
        })
        .await;
    }

    let status = caravan(&["group", "status", "--api", &first.url()]);
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{shown}{}", String::from_utf8_lossy(&status.stderr));
    assert!(
        shown.contains("(leader)") && shown.lines().filter(|l| l.contains("/ip4/127.0.0.1/tcp/")).count() == 3,
        "{shown}"
    );

    // A node of another owner cannot join: it holds another key.
    let stranger = root.path().join("stranger");
    prepare(&stranger, None);
    let refused = caravan(&[
        "group",
        "join",
        "--data-dir",
        stranger.to_str().unwrap(),
        "--via",
        &first.url(),
        "--p2p",
        "/ip4/127.0.0.1/tcp/1",
    ]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && why.contains("holds owner"), "{why}");

    let third = group_of(&client, &joined[1]).await["member_id"].as_u64().unwrap();
    let left = caravan(&["group", "leave", "--api", &joined[1].url()]);
    let shown = String::from_utf8_lossy(&left.stdout);
    assert!(left.status.success(), "{shown}{}", String::from_utf8_lossy(&left.stderr));
    assert!(shown.contains(&format!("member {third} left")), "{shown}");
    let group = group_of(&client, &first).await;
    assert_eq!(voters(&group), 2, "{group}");
    assert!(group["members"].as_array().unwrap().iter().all(|m| m["id"] != third), "{group}");
}

#[test]
fn killing_the_leader_under_a_race_for_the_last_rooms_loses_and_oversells_nothing() {
    let base = (24_000u16..40_000)
        .step_by(89)
        .find(|&base| (0..6).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()))
        .expect("free ports");
    let json = tempfile::NamedTempFile::new().unwrap();
    let bench = caravan(&[
        "bench",
        "failover",
        "--seconds",
        "8",
        "--clients",
        "8",
        "--rooms",
        "2000",
        "--nights",
        "2",
        "--base-port",
        &base.to_string(),
        "--json",
        json.path().to_str().unwrap(),
    ]);
    let shown = format!("{}{}", String::from_utf8_lossy(&bench.stdout), String::from_utf8_lossy(&bench.stderr));
    assert!(bench.status.success(), "{shown}");
    let result: Value = serde_json::from_str(&std::fs::read_to_string(json.path()).unwrap()).unwrap();
    assert_eq!(result["acked_lost"], 0, "{result}");
    assert_eq!(result["oversold"], 0, "{result}");
    assert_eq!(result["holds_unknown"], 0, "every traveller got an answer: {result}");
    // Every acknowledged hold, and nothing else, holds a room.
    assert_eq!(result["rooms_held"], result["holds_acked"], "{result}");
    // Holds are taken again after the kill, unless the rooms sold out first.
    assert!(result["failover_s"].is_number() || result["rooms_held"] == 4_000, "{result}");
}
