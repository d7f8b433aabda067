//! `caravan demo` starts its network, fills it, and serves searchable,
//! bookable pages at the address asked for.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_demo_serves_a_searchable_catalog() {
    // Six members take twelve ports from the base: find a free run of them.
    let base = (20_000u16..40_000)
        .step_by(97)
        .find(|&base| (0..12).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()))
        .expect("free ports");
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_caravan"))
        .args(["demo", "--http", &format!("127.0.0.1:{base}"), "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(demo.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut ready = false;
    for line in stdout.lines() {
        let line = line.unwrap();
        if line.starts_with("Open http://") {
            ready = true;
            break;
        }
        assert!(Instant::now() < deadline, "the demo did not come up");
    }
    assert!(ready, "the demo ended before it was ready");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let tomorrow = caravan_model::Timestamp(now_ms).date().add_days(1);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (trips, stays) =
        runtime.block_on(async {
            let client = reqwest::Client::new();
            let get = |path: String| {
                let client = client.clone();
                async move {
                    client.get(format!("http://127.0.0.1:{base}{path}")).send().await.unwrap().text().await.unwrap()
                }
            };
            let trips = get(format!("/trips?from=GVA&to=ANC&date={tomorrow}")).await;
            let stays =
                get(format!("/stays?city=annecy&check_in={tomorrow}&check_out={}&guests=2", tomorrow.add_days(2)))
                    .await;
            (trips, stays)
        });
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(demo.id() as i32), nix::sys::signal::Signal::SIGINT);
    let _ = demo.wait();
    assert!(trips.contains("1 itinerary") && trips.contains("/book?parts="), "{trips}");
    assert!(stays.contains("2 stays available"), "{stays}");
}
