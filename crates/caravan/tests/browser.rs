//! The web app in a real browser: headless Chromium, driven over WebDriver
//! (chromedriver), against `caravan demo`. A newcomer registers, confirms
//! the address from the mail, logs in, books a bus, a flight and a hotel
//! night as one booking, sees it and cancels it; a provider creates a
//! service and sets its prices; an admin changes an account's role.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them). Without them the test says so and passes, except under CI
//! (`CI=true`), where it fails. With `CARAVAN_SCREENSHOTS=DIR`, it saves
//! screenshots of the main pages there (`docs/screenshots/` holds them).

mod support;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const PASSWORD: &str = "caravan demo password";
/// How long a page may take to show what a step waits for.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Option<Driver> {
        if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI must run the browser tests: install chromium and chromium-driver"
            );
            eprintln!("skipped: {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Its own process group, so the browsers it starts go with it.
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Driver { child, url: format!("http://127.0.0.1:{port}") })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // A failed step leaves its browser open: stop the whole group.
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// One browser window on one site, with the steps the scenarios take.
struct Browser {
    client: Client,
    site: String,
    shots: Option<PathBuf>,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(driver: &Driver, site: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        // Flags from this machine's notes: no sandbox as root, and no
        // background connections (the network is closed).
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1280,1000".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), "chrome".into());
        capabilities.insert("goog:chromeOptions".into(), serde_json::json!({ "binary": CHROMIUM, "args": args }));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client =
            ClientBuilder::new(connector).capabilities(capabilities).connect(&driver.url).await.expect("a browser");
        let shots = std::env::var_os("CARAVAN_SCREENSHOTS").map(PathBuf::from);
        Browser { client, site: site.to_owned(), shots, _profile: profile }
    }

    async fn go(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.site)).await.unwrap();
    }

    async fn fill(&self, name: &str, value: &str) {
        let input = self.client.find(Locator::Css(&format!("[name='{name}']"))).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }

    /// Clicks the button or link whose text is `text`, in the page's main
    /// part before its header (whose "Log in" link is not the form's).
    async fn press(&self, text: &str) {
        for xpath in [
            format!("//main//button[normalize-space()='{text}']"),
            format!("//main//a[normalize-space()='{text}']"),
            format!("//button[normalize-space()='{text}'] | //a[normalize-space()='{text}']"),
        ] {
            if let Ok(element) = self.client.find(Locator::XPath(&xpath)).await {
                element.click().await.unwrap();
                return;
            }
        }
        panic!("no button or link {text:?} on:\n{}", self.text().await);
    }

    /// The page's text; empty while a new page is loading (between a
    /// click and the next page there may be no body yet).
    async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the page shows `needle`; the page's text otherwise.
    async fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "the page never showed {needle:?}; it shows:\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Checks the page with axe-core (WCAG 2 A and AA rules and axe's best
    /// practices: labels, names, contrast, landmarks, heading order, …) and
    /// fails on any violation. axe comes from npm (`.ci/run` installs it and sets
    /// `CARAVAN_AXE`); without it the check is skipped, except under CI.
    async fn check_accessibility(&self, page: &str) {
        let Some(axe) = axe_source() else { return };
        self.client.execute(&axe, vec![]).await.expect("axe loads");
        let script = "const done = arguments[arguments.length - 1];
            axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'best-practice'] })
              .then(r => done(r.violations
                .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '))))
              .catch(e => done(['axe failed: ' + e]));";
        let found = self.client.execute_async(script, vec![]).await.expect("axe runs");
        let found: Vec<String> = serde_json::from_value(found).unwrap_or_default();
        assert!(found.is_empty(), "{page}: accessibility violations: {found:#?}");
    }

    async fn screenshot(&self, name: &str) {
        if let Some(dir) = &self.shots {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), self.client.screenshot().await.unwrap()).unwrap();
        }
    }

    async fn log_in(&self, email: &str, password: &str) {
        self.go("/login").await;
        self.fill("email", email).await;
        self.fill("password", password).await;
        self.press("Log in").await;
        self.wait_for(email).await;
    }

    async fn close(self) {
        self.client.close().await.unwrap();
    }
}

/// axe-core's script, from the file `CARAVAN_AXE` names.
fn axe_source() -> Option<String> {
    let Some(path) = std::env::var_os("CARAVAN_AXE") else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI checks accessibility: set CARAVAN_AXE");
        return None;
    };
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading axe-core from {path:?}: {e}")))
}

#[test]
fn people_use_the_web_app_in_a_browser() {
    let Some(driver) = Driver::start() else { return };
    let demo = support::Demo::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        traveller_registers_books_and_cancels(&driver, &demo).await;
        provider_creates_a_service_and_sets_prices(&driver, &demo).await;
        admin_changes_a_role(&driver, &demo).await;
    });
}

const NEWCOMER: &str = "newcomer@example.org";

async fn traveller_registers_books_and_cancels(driver: &Driver, demo: &support::Demo) {
    let browser = Browser::open(driver, &demo.url).await;
    browser.go("/").await;
    browser.wait_for("Caravan").await;
    browser.screenshot("home").await;
    browser.check_accessibility("home").await;

    browser.go("/register").await;
    browser.fill("email", NEWCOMER).await;
    browser.fill("password", "a long enough phrase").await;
    browser.press("Create account").await;
    browser.wait_for("Check your mail").await;
    let mail = demo.agency_mails().into_iter().find(|m| m.contains(NEWCOMER)).expect("a confirmation mail");
    let link = mail.split_whitespace().find(|w| w.contains("/verify?token=")).expect("a link in the mail");
    let path = &link[link.find("/verify").unwrap()..];
    browser.go(path).await;
    browser.wait_for("Address confirmed").await;
    browser.log_in(NEWCOMER, "a long enough phrase").await;

    // Geneva → Paris: a bus to Lyon, then a flight; then a night in Paris.
    let tomorrow = support::tomorrow();
    browser.go("/trips").await;
    browser.fill("from", "GVA").await;
    browser.fill("to", "CDG").await;
    browser
        .client
        .execute(&format!("document.querySelector('[name=date]').value = '{tomorrow}'"), vec![])
        .await
        .unwrap();
    browser.press("Search trips").await;
    let trips = browser.wait_for("1 itinerary").await;
    assert!(trips.contains("Rhône Lines") && trips.contains("Skyway"), "bus then flight: {trips}");
    browser.screenshot("trips").await;
    browser.check_accessibility("trips").await;
    browser.press("Add a stay in Paris").await;
    browser.wait_for("Adding a stay to your trip").await;
    browser.wait_for("Hôtel de l'Opéra").await;
    browser.screenshot("stays").await;
    browser.check_accessibility("stays").await;
    browser.press("Book with the trip").await;

    // Held first, with a countdown; who travels is asked while it runs.
    browser.wait_for("Hold it for you?").await;
    browser.press("Hold it for me").await;
    let held = browser.wait_for("Held for you until").await;
    assert!(held.contains("min left"), "a countdown: {held}");
    browser.fill("name", "Nora Newcomer").await;
    browser.screenshot("booking-held").await;
    browser.check_accessibility("booking-held").await;
    browser.press("Confirm and book").await;
    let confirmed = browser.wait_for("confirmed").await;
    let id: String = confirmed
        .split("Booking ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .expect("the booking's number")
        .to_owned();
    assert!(confirmed.matches("confirmed").count() >= 4, "the booking and its three parts: {confirmed}");
    browser.screenshot("booking-confirmed").await;

    browser.go("/bookings").await;
    browser.wait_for(&format!("Booking {id}")).await;
    browser.screenshot("my-bookings").await;
    browser.check_accessibility("my-bookings").await;
    browser.go(&format!("/bookings/{id}")).await;
    browser.wait_for("cancelling now costs").await;
    browser.press("Cancel this booking").await;
    browser.wait_for(&format!("Booking {id}: cancelled")).await;

    // On a phone the pages fit the screen: one column, nothing to scroll sideways.
    browser.client.set_window_size(390, 844).await.unwrap();
    for path in ["/", &format!("/trips?from=GVA&to=CDG&date={tomorrow}"), "/bookings"] {
        browser.go(path).await;
        browser.wait_for("Caravan").await;
        // The elements that reach past the screen's right edge, if any.
        let wider = browser
            .client
            .execute(
                "return [...document.querySelectorAll('body *')]
                   .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                   .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))
                   .slice(0, 5).join(', ') + ' / ' + window.innerWidth",
                vec![],
            )
            .await
            .unwrap();
        let wider = wider.as_str().unwrap_or_default().to_owned();
        assert!(wider.starts_with(" / "), "{path} scrolls sideways on a phone: {wider}");
    }
    browser.screenshot("phone-bookings").await;
    browser.close().await;
}

async fn provider_creates_a_service_and_sets_prices(driver: &Driver, demo: &support::Demo) {
    let browser = Browser::open(driver, demo.member("Alpine Hotels")).await;
    browser.log_in("provider@demo.caravan", PASSWORD).await;
    browser.go("/provider").await;
    browser.wait_for("Hôtel du Lac").await;
    browser.screenshot("provider-services").await;
    browser.check_accessibility("provider-services").await;

    browser.press("New room or rental").await;
    browser.wait_for("New room or rental").await;
    browser.fill("title", "Hôtel du Parc — Suite").await;
    browser.fill("units", "3").await;
    browser.fill("city", "Annecy").await;
    browser.fill("country", "FR").await;
    browser.fill("lat", "45.90").await;
    browser.fill("lon", "6.12").await;
    browser.press("Create").await;
    browser.wait_for("created").await;
    browser.fill("available", "3").await;
    browser.fill("price", "150").await;
    browser.fill("min_stay", "2").await;
    browser.press("Apply to these days").await;
    let page = browser.wait_for("changed").await;
    assert!(page.contains("150.00 EUR") && page.contains("min 2 nights"), "{page}");
    browser.screenshot("provider-calendar").await;
    browser.check_accessibility("provider-calendar").await;

    browser.press("Edit title, description and terms").await;
    browser.fill("description", "A suite under the old town's plane trees.").await;
    browser.press("Save changes").await;
    browser.wait_for("description is saved").await;
    browser.close().await;
}

async fn admin_changes_a_role(driver: &Driver, demo: &support::Demo) {
    let browser = Browser::open(driver, &demo.url).await;
    browser.log_in("admin@demo.caravan", PASSWORD).await;
    browser.go("/admin").await;
    browser.wait_for(NEWCOMER).await;
    let row = format!("//tr[td[normalize-space()='{NEWCOMER}']]");
    let select = browser.client.find(Locator::XPath(&format!("{row}//select"))).await.unwrap();
    select.select_by_value("provider").await.unwrap();
    browser.client.find(Locator::XPath(&format!("{row}//button"))).await.unwrap().click().await.unwrap();
    browser.wait_for("has a new role").await;
    browser.screenshot("admin").await;
    browser.check_accessibility("admin").await;
    browser.close().await;

    // The newcomer now reaches the provider's pages.
    let newcomer = Browser::open(driver, &demo.url).await;
    newcomer.log_in(NEWCOMER, "a long enough phrase").await;
    newcomer.press("My services").await;
    newcomer.wait_for("You manage no service").await;
    newcomer.close().await;
}
