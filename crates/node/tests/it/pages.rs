//! The traveller's pages: server-rendered search for stays and trips.

use super::*;

async fn page(t: &TestNode, path: &str) -> (StatusCode, String, String) {
    let request = Request::get(path).header("authorization", "anonymous").body(Body::empty()).unwrap();
    let response = caravan_api::router(t.node.app_state()).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn home_and_assets_render_without_an_account() {
    let t = TestNode::start().await;
    let (status, content_type, html) = page(&t, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(html.contains("Find a stay") && html.contains("Find a trip"), "{html}");
    assert!(html.contains("<label>City <input name=\"city\""), "every input has its label");
    let (status, content_type, css) = page(&t, "/assets/app.css").await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, "text/css; charset=utf-8"));
    assert!(css.contains("--accent"));
    assert_eq!(page(&t, "/assets/htmx-2.0.4.min.js").await.0, StatusCode::OK);
    assert_eq!(page(&t, "/assets/nope.js").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn stay_search_shows_offers_with_price_and_policy() {
    let t = TestNode::start().await;
    t.hotel(3).await;
    // The node's own listings reach its search index after a publishing point.
    let path = format!("/stays?city=annecy&check_in={}&check_out={}&guests=2", day(2), day(4));
    let mut html = String::new();
    for _ in 0..100 {
        html = page(&t, &path).await.2;
        if html.contains("1 stay available") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(html.contains("1 stay available"), "{html}");
    assert!(html.contains("Hôtel du Lac — Double") && html.contains("200.00 EUR"), "{html}");
    assert!(html.contains("Free cancellation until"), "{html}");
    assert!(html.contains(&format!("value=\"{}\"", day(2))), "the form keeps what was asked");
}

#[tokio::test]
async fn bad_searches_explain_themselves_on_the_page() {
    let t = TestNode::start().await;
    let (status, _, html) = page(&t, "/stays?city=annecy&check_in=2030-01-05&check_out=2030-01-01").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("role=\"alert\"") && html.contains("check_out must be after check_in"), "{html}");
    let (_, _, html) = page(&t, "/stays?guests=many").await;
    assert!(html.contains("role=\"alert\""), "{html}");
    let (_, _, html) = page(&t, "/trips?from=GVA&to=LYS").await;
    assert!(html.contains("date is required"), "{html}");
    let (_, _, html) = page(&t, &format!("/trips?from=GVA&to=LYS&date={}", day(2))).await;
    assert!(html.contains("0 itineraries"), "{html}");
}

/// A browser's exchange: status, `Set-Cookie` headers and the body.
async fn browse(
    t: &TestNode,
    method: &str,
    path: &str,
    cookies: &str,
    form: Option<&str>,
) -> (StatusCode, Vec<String>, String) {
    let mut request = Request::builder().method(method).uri(path).header("authorization", "anonymous");
    if !cookies.is_empty() {
        request = request.header("cookie", cookies);
    }
    let body = match form {
        Some(form) => {
            request = request.header("content-type", "application/x-www-form-urlencoded");
            Body::from(form.to_owned())
        }
        None => Body::empty(),
    };
    let response = caravan_api::router(t.node.app_state()).oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let set: Vec<String> =
        response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, set, String::from_utf8(bytes.to_vec()).unwrap())
}

/// `name=value` out of a `Set-Cookie` header.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

fn hidden_csrf(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Adds a verified account with the password "a long enough phrase", as
/// `caravan user add` would.
async fn add_account(t: &TestNode, email: &'static str, role: caravan_accounts::Role) -> u64 {
    let add = move |conn: &caravan_store::rusqlite::Connection| {
        let now = caravan_model::Timestamp(0);
        caravan_services::accounts::rules::add_user(conn, email, "a long enough phrase", role, true, now)
    };
    t.node.write(add).await.unwrap()
}

async fn make_traveller(t: &TestNode) {
    add_account(t, "ada@example.org", caravan_accounts::Role::Traveller).await;
}

#[tokio::test]
async fn log_in_and_out_with_a_renewed_session_and_csrf() {
    let t = TestNode::start().await;
    make_traveller(&t).await;
    let (status, set, html) = browse(&t, "GET", "/login", "", None).await;
    assert_eq!(status, StatusCode::OK);
    let csrf_cookie = pair(&set[0]);
    assert!(set[0].contains("HttpOnly") && set[0].contains("SameSite=Strict"), "{set:?}");
    let csrf = hidden_csrf(&html);
    assert_eq!(csrf_cookie, format!("caravan_csrf={csrf}"));

    let form = format!("email=ada%40example.org&password=a+long+enough+phrase&csrf={csrf}");
    // Without the cookie half of the token: refused.
    let (status, _, _) = browse(&t, "POST", "/login", "", Some(&form)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, set, _) = browse(&t, "POST", "/login", &csrf_cookie, Some(&form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(set[0].contains("HttpOnly") && set[0].contains("SameSite=Lax"), "{set:?}");
    let session = pair(&set[0]);
    // Logging in again gives another session id.
    let (_, again, _) = browse(&t, "POST", "/login", &format!("{csrf_cookie}; {session}"), Some(&form)).await;
    assert_ne!(pair(&again[0]), session, "the session id is renewed at login");

    let (_, _, home) = browse(&t, "GET", "/", &session, None).await;
    assert!(home.contains("ada@example.org"), "{home}");
    let session_csrf = hidden_csrf(&home);
    let (status, _, _) = browse(&t, "POST", "/logout", &session, Some("csrf=forged")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a form without its CSRF token is refused");
    let (status, set, _) = browse(&t, "POST", "/logout", &session, Some(&format!("csrf={session_csrf}"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(set[0].contains("Max-Age=0"));
    let (_, _, home) = browse(&t, "GET", "/", &session, None).await;
    assert!(!home.contains("ada@example.org"), "the session ended");
}

#[tokio::test]
async fn repeated_wrong_passwords_are_throttled() {
    let t = TestNode::start().await;
    make_traveller(&t).await;
    let (_, set, html) = browse(&t, "GET", "/login", "", None).await;
    let (cookie, csrf) = (pair(&set[0]), hidden_csrf(&html));
    let wrong = format!("email=ada%40example.org&password=not+the+password&csrf={csrf}");
    for _ in 0..caravan_accounts::throttle::FREE_FAILURES {
        let (status, _, html) = browse(&t, "POST", "/login", &cookie, Some(&wrong)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(html.contains("wrong email or password"), "{html}");
    }
    let right = format!("email=ada%40example.org&password=a+long+enough+phrase&csrf={csrf}");
    let (status, _, html) = browse(&t, "POST", "/login", &cookie, Some(&right)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{html}");
    assert!(html.contains("try again in"), "{html}");
}

/// The link token of the newest mail in the node's outbox to `to`.
pub fn mailed_token(t: &TestNode, to: &str) -> String {
    let outbox = t.dir.path().join(caravan_node::OUTBOX_DIR);
    let mut mails: Vec<_> = std::fs::read_dir(&outbox).unwrap().map(|e| e.unwrap().path()).collect();
    mails.sort();
    let text = mails
        .iter()
        .rev()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|m| m.contains(&format!("To: {to}")))
        .unwrap();
    let start = text.find("token=").expect("a link") + "token=".len();
    text[start..start + 64].to_owned()
}

#[tokio::test]
async fn register_verify_log_in_and_reset_a_password_once() {
    let t = TestNode::start().await;
    let (_, set, html) = browse(&t, "GET", "/register", "", None).await;
    let (cookie, csrf) = (pair(&set[0]), hidden_csrf(&html));
    let form = format!("email=grace%40example.org&password=a+long+enough+phrase&csrf={csrf}");
    let (status, _, html) = browse(&t, "POST", "/register", "", Some(&form)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF cookie: {html}");
    let (status, _, html) = browse(&t, "POST", "/register", &cookie, Some(&form)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Check your mail"), "{html}");

    let login = format!("email=grace%40example.org&password=a+long+enough+phrase&csrf={csrf}");
    let (status, _, html) = browse(&t, "POST", "/login", &cookie, Some(&login)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains("confirm your email address first"), "{html}");
    // Registering again before confirming sends a new link (the first mail
    // may be lost) but keeps the password chosen first.
    let again = format!("email=grace%40example.org&password=someone+else+typed+this&csrf={csrf}");
    let (status, _, html) = browse(&t, "POST", "/register", &cookie, Some(&again)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let token = mailed_token(&t, "grace@example.org");
    let (status, _, html) = browse(&t, "GET", &format!("/verify?token={token}"), "", None).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let (status, _, _) = browse(&t, "GET", &format!("/verify?token={token}"), "", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a verification link works once");
    let intruder = format!("email=grace%40example.org&password=someone+else+typed+this&csrf={csrf}");
    assert_eq!(browse(&t, "POST", "/login", &cookie, Some(&intruder)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(browse(&t, "POST", "/login", &cookie, Some(&login)).await.0, StatusCode::SEE_OTHER);

    // Forgotten password: the same answer for a stranger's address.
    let (_, _, stranger) =
        browse(&t, "POST", "/forgot", &cookie, Some(&format!("email=nobody%40example.org&csrf={csrf}"))).await;
    let (_, _, grace) =
        browse(&t, "POST", "/forgot", &cookie, Some(&format!("email=grace%40example.org&csrf={csrf}"))).await;
    assert_eq!(stranger, grace);
    let reset = mailed_token(&t, "grace@example.org");
    let new = format!("token={reset}&password=a+brand+new+phrase&csrf={csrf}");
    let (status, _, html) = browse(&t, "POST", "/reset", &cookie, Some(&new)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let (status, _, html) = browse(&t, "POST", "/reset", &cookie, Some(&new)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a reset token works once, like a verification link");
    assert!(html.contains("used up or expired"), "{html}");
    let relogin = format!("email=grace%40example.org&password=a+brand+new+phrase&csrf={csrf}");
    assert_eq!(browse(&t, "POST", "/login", &cookie, Some(&relogin)).await.0, StatusCode::SEE_OTHER);
}

/// Logs Ada in; her session cookie.
async fn ada_session(t: &TestNode) -> String {
    make_traveller(t).await;
    let (_, set, html) = browse(t, "GET", "/login", "", None).await;
    let (cookie, csrf) = (pair(&set[0]), hidden_csrf(&html));
    let form = format!("email=ada%40example.org&password=a+long+enough+phrase&csrf={csrf}");
    let (status, set, _) = browse(t, "POST", "/login", &cookie, Some(&form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    pair(&set[0])
}

#[tokio::test]
async fn a_traveller_holds_sees_the_countdown_confirms_and_finds_the_booking() {
    let t = TestNode::start().await;
    t.hotel(3).await;
    let session = ada_session(&t).await;
    let search = format!("/stays?city=annecy&check_in={}&check_out={}&guests=2", day(2), day(4));
    let mut html = String::new();
    for _ in 0..100 {
        html = browse(&t, "GET", &search, &session, None).await.2;
        if html.contains("/book?parts=") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let start = html.find("/book?parts=").expect("a Book link");
    let book_link = html[start..].split('"').next().unwrap().to_owned();
    assert_eq!(browse(&t, "GET", &book_link, "", None).await.0, StatusCode::SEE_OTHER, "booking needs a login");

    let (status, _, form) = browse(&t, "GET", &book_link, &session, None).await;
    assert_eq!(status, StatusCode::OK, "{form}");
    let csrf = hidden_csrf(&form);
    let parts = &book_link["/book?parts=".len()..];
    let hold_it = format!("csrf={csrf}&parts={parts}");
    let (status, _, body) = browse(&t, "POST", "/book", &session, Some(&format!("csrf=forged&parts={parts}"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let response = {
        let request = Request::post("/book")
            .header("authorization", "anonymous")
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(hold_it))
            .unwrap();
        caravan_api::router(t.node.app_state()).oneshot(request).await.unwrap()
    };
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page_path = response.headers()["location"].to_str().unwrap().to_owned();
    let (_, _, held) = browse(&t, "GET", &page_path, &session, None).await;
    assert!(held.contains("Held for you until") && held.contains("Confirm and book"), "{held}");

    assert!(held.contains("Traveller's full name"), "who travels is asked while held: {held}");

    // Details that do not check out come back on the page; the hold stays.
    let csrf = hidden_csrf(&held);
    let confirm = |name: &str| format!("csrf={csrf}&name={name}&email=ada%40example.org&phone=");
    let (status, _, refused) = browse(&t, "POST", &format!("{page_path}/confirm"), &session, Some(&confirm(""))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.contains("Held for you until") && refused.contains("role=\"alert\""), "{refused}");
    let (status, _, _) =
        browse(&t, "POST", &format!("{page_path}/confirm"), &session, Some(&confirm("Ada+Lovelace"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // The owner (this node) keeps who travels, given with the confirmation.
    let (_, sales) = t.call("GET", "/api/v1/sales", None).await;
    assert_eq!(sales["bookings"][0]["traveller"]["name"], "Ada Lovelace", "{sales}");
    let (_, _, confirmed) = browse(&t, "GET", &page_path, &session, None).await;
    assert!(confirmed.contains(": confirmed") && confirmed.contains("200.00 EUR"), "{confirmed}");
    assert!(confirmed.contains("cancelling now costs"), "the penalty is shown before cancelling: {confirmed}");
    let (_, _, mine) = browse(&t, "GET", "/bookings", &session, None).await;
    assert!(mine.contains(&format!("href=\"{page_path}\"")), "{mine}");
    assert!(mine.contains("Upcoming") && !mine.contains("Past, let go"), "a stay from day 2 is upcoming: {mine}");
    // Someone else's booking is not there for another account.
    let (status, _, _) = browse(&t, "GET", &page_path, "caravan_session=00", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "no session: log in first");
}

#[tokio::test]
async fn a_listing_page_shows_its_calendar_and_terms() {
    let t = TestNode::start().await;
    let id = t.hotel(3).await;
    let origin = t.node.origin().to_hex();
    let path = format!("/listings/{origin}/{id}");
    let mut html = String::new();
    for _ in 0..100 {
        html = page(&t, &path).await.2;
        if html.contains("100.00 EUR") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(html.contains("Hôtel du Lac — Double") && html.contains("Annecy, FR"), "{html}");
    assert!(html.contains("Free cancellation until 48 hours before"), "{html}");
    assert!(html.contains(&day(1)) && html.contains("100.00 EUR"), "{html}");
    assert!(html.contains("closed"), "today is not for sale: {html}");
    assert_eq!(page(&t, &format!("/listings/{origin}/nope")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(page(&t, "/listings/zz/nope").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_provider_sets_prices_of_their_own_services_only() {
    let t = TestNode::start().await;
    let id = t.hotel(3).await;
    let other = t.hotel(1).await;
    let managed = id.clone();
    let user = add_account(&t, "ada@example.org", caravan_accounts::Role::Provider).await;
    t.node.write(move |conn| caravan_store::users::add_manager(conn, &managed, user)).await.unwrap();
    let (_, set, html) = browse(&t, "GET", "/login", "", None).await;
    let (cookie, csrf) = (pair(&set[0]), hidden_csrf(&html));
    let form = format!("email=ada%40example.org&password=a+long+enough+phrase&csrf={csrf}");
    let session = pair(&browse(&t, "POST", "/login", &cookie, Some(&form)).await.1[0]);

    let (status, _, html) = browse(&t, "GET", "/provider", &session, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&id) && !html.contains(&other), "only the services she manages: {html}");
    let csrf = hidden_csrf(&html);
    let change =
        |listing: &str| format!("csrf={csrf}&listing={listing}&from={}&to={}&available=2&price=150.50", day(5), day(7));
    let (status, _, _) = browse(&t, "POST", "/provider/ari", &session, Some(&change(&id))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, ari) = t.call("GET", &format!("/api/v1/listings/{id}/ari?from={}&to={}", day(5), day(6)), None).await;
    assert_eq!(
        (ari["days"][0]["price_minor"].as_i64(), ari["days"][0]["allotment"].as_u64()),
        (Some(15_050), Some(2)),
        "{ari}"
    );
    let (status, _, html) = browse(&t, "POST", "/provider/ari", &session, Some(&change(&other))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    let (status, _, _) =
        browse(&t, "POST", "/provider/ari", &session, Some(&change(&id).replace(&csrf, "forged"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Logs `email` (password "a long enough phrase") in; the session cookie.
async fn log_in(t: &TestNode, email: &str) -> String {
    let (_, set, html) = browse(t, "GET", "/login", "", None).await;
    let (cookie, csrf) = (pair(&set[0]), hidden_csrf(&html));
    let form = format!("email={}&password=a+long+enough+phrase&csrf={csrf}", email.replace('@', "%40"));
    let (status, set, _) = browse(t, "POST", "/login", &cookie, Some(&form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    pair(&set[0])
}

#[tokio::test]
async fn an_admin_changes_a_users_role() {
    let t = TestNode::start().await;
    make_traveller(&t).await;
    add_account(&t, "root@example.org", caravan_accounts::Role::Admin).await;
    let traveller = log_in(&t, "ada@example.org").await;
    assert_eq!(browse(&t, "GET", "/admin", &traveller, None).await.0, StatusCode::FORBIDDEN);
    let admin = log_in(&t, "root@example.org").await;
    let (status, _, html) = browse(&t, "GET", "/admin", &admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("ada@example.org") && html.contains("Role of ada@example.org"), "{html}");
    assert!(html.contains("Peers connected") && html.contains("Replication lag"), "node status: {html}");
    let csrf = hidden_csrf(&html);
    let ada_id = t
        .node
        .write(|conn| caravan_store::users::by_email(conn, "ada@example.org").map(|u| u.unwrap().id))
        .await
        .unwrap();
    // Ada, with her own valid form token, may not promote herself.
    let her_csrf = hidden_csrf(&browse(&t, "GET", "/", &traveller, None).await.2);
    let hers = format!("csrf={her_csrf}&user={ada_id}&role=provider");
    let (status, _, html) = browse(&t, "POST", "/admin/role", &traveller, Some(&hers)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("Only an administrator"), "{html}");
    let form = format!("csrf={csrf}&user={ada_id}&role=provider");
    assert_eq!(browse(&t, "POST", "/admin/role", &admin, Some(&form)).await.0, StatusCode::SEE_OTHER);
    // The new role counts at once: Ada now sees her provider pages.
    assert_eq!(browse(&t, "GET", "/provider", &traveller, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn api_tokens_are_made_and_revoked_in_the_browser() {
    let t = TestNode::start().await;
    make_traveller(&t).await;
    let session = log_in(&t, "ada@example.org").await;
    let (_, _, html) = browse(&t, "GET", "/tokens", &session, None).await;
    let csrf = hidden_csrf(&html);
    let (status, _, html) = browse(&t, "POST", "/tokens", &session, Some(&format!("csrf={csrf}&name=pms"))).await;
    assert_eq!(status, StatusCode::OK);
    let start = html.find("shown this once: <code>").expect("the new token") + "shown this once: <code>".len();
    let token = html[start..start + 64].to_owned();
    let bearer = format!("Bearer {token}");
    assert_eq!(t.call_with("GET", "/api/v1/bookings", None, &[("authorization", &bearer)]).await.0, StatusCode::OK);

    let (_, _, html) = browse(&t, "GET", "/tokens", &session, None).await;
    assert!(!html.contains(&token), "a token is shown once only");
    let hash_at = html.find("name=\"hash\" value=\"").unwrap() + "name=\"hash\" value=\"".len();
    let hash = &html[hash_at..hash_at + 64];
    let (status, _, _) =
        browse(&t, "POST", "/tokens/revoke", &session, Some(&format!("csrf={csrf}&hash={hash}"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        t.call_with("GET", "/api/v1/bookings", None, &[("authorization", &bearer)]).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Adds a verified provider (password "a long enough phrase").
async fn make_provider(t: &TestNode, email: &'static str) {
    add_account(t, email, caravan_accounts::Role::Provider).await;
}

#[tokio::test]
async fn a_provider_runs_a_service_from_the_back_office() {
    use caravan_api::AccountService;
    let t = TestNode::start().await;
    make_provider(&t, "ada@example.org").await;
    make_provider(&t, "bob@example.org").await;
    let ada = log_in(&t, "ada@example.org").await;
    let (status, _, html) = browse(&t, "GET", "/provider/new?kind=stay", &ada, None).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = hidden_csrf(&html);
    let post = |path: &'static str, session: String, form: String| {
        let t = &t;
        async move { browse(t, "POST", path, &session, Some(&form)).await }
    };
    let stay = |lat: &str| {
        format!(
            "csrf={csrf}&kind=stay&id=sea-view&title=Sea+view&description=&currency=EUR&free_until_hours=48\
             &penalty_kind=nights&penalty=1&stay_type=hotel_room&address=&city=Nice&country=fr&lat={lat}&lon=7.26\
             &amenities=wifi%2C+sea&max_guests=2&check_in=15%3A00&check_out=11%3A00&time_zone=Europe%2FParis&units=3"
        )
    };

    // A field that does not parse comes back named, with what was typed.
    let (status, _, html) = post("/provider/new", ada.clone(), stay("north")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("latitude") && html.contains("value=\"Nice\""), "{html}");
    assert_eq!(post("/provider/new", ada.clone(), stay("43.7")).await.0, StatusCode::SEE_OTHER);
    let (_, listing) = t.call("GET", "/api/v1/listings/sea-view", None).await;
    assert_eq!((listing["stay"]["country"].as_str(), listing["stay"]["units"].as_u64()), (Some("FR"), Some(3)));

    // Prices, availability and restrictions over a range of days.
    let ari = format!(
        "csrf={csrf}&listing=sea-view&from={}&to={}&available=2&price=99.50&min_stay=2&max_stay=\
         &closed_to_arrival=keep&closed_to_departure=keep&stop_sell=no",
        day(1),
        day(8)
    );
    assert_eq!(post("/provider/ari", ada.clone(), ari).await.0, StatusCode::SEE_OTHER);
    let (_, days) = t.call("GET", &format!("/api/v1/listings/sea-view/ari?from={}&to={}", day(1), day(2)), None).await;
    let first = &days["days"][0];
    assert_eq!((first["price_minor"].as_i64(), first["min_stay"].as_u64()), (Some(9_950), Some(2)), "{days}");
    let (status, _, html) = browse(&t, "GET", "/provider/services/sea-view", &ada, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("99.50 EUR") && html.contains("min 2 nights"), "{html}");
    // The notice after a change is chosen by a code; a crafted link's words are not shown.
    let (_, _, crafted) = browse(&t, "GET", "/provider/services/sea-view?done=call+us+now", &ada, None).await;
    assert!(!crafted.contains("call us now"), "{crafted}");
    let (_, _, saved) = browse(&t, "GET", "/provider/services/sea-view?done=ari", &ada, None).await;
    assert!(saved.contains("Saved: the days are changed"), "{saved}");

    // Edit the description; the kind and id stay the listing's own.
    let edited = stay("43.7").replace("title=Sea+view", "title=Sea+view+deluxe").replace("kind=stay", "kind=trip");
    assert_eq!(post("/provider/services/sea-view/edit", ada.clone(), edited).await.0, StatusCode::SEE_OTHER);
    let (_, listing) = t.call("GET", "/api/v1/listings/sea-view", None).await;
    assert_eq!(listing["title"], "Sea view deluxe");

    // A booking shows among her sales, with who travels.
    let (status, hold) = t.call("POST", "/api/v1/holds", Some(stay_hold("sea-view", 1, 3, 1))).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    let hold_id = hold["id"].as_u64().unwrap();
    t.call("POST", &format!("/api/v1/holds/{hold_id}/confirm"), None).await;
    let (_, _, html) = browse(&t, "GET", "/provider/sales", &ada, None).await;
    assert!(html.contains(&format!("<td>{hold_id}</td>")) && html.contains("confirmed"), "{html}");

    // Off sale: nothing can be held until it is back on sale.
    let sale = |paused: bool| format!("csrf={csrf}&paused={paused}");
    assert_eq!(post("/provider/services/sea-view/sale", ada.clone(), sale(true)).await.0, StatusCode::SEE_OTHER);
    let (status, refused) = t.call("POST", "/api/v1/holds", Some(stay_hold("sea-view", 3, 5, 1))).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::CONFLICT, Some("listing_paused")));
    assert_eq!(post("/provider/services/sea-view/sale", ada.clone(), sale(false)).await.0, StatusCode::SEE_OTHER);
    assert_eq!(t.call("POST", "/api/v1/holds", Some(stay_hold("sea-view", 3, 5, 1))).await.0, StatusCode::CREATED);

    // A co-manager sees and changes it; the last manager cannot be removed.
    let bob = log_in(&t, "bob@example.org").await;
    assert_eq!(browse(&t, "GET", "/provider/services/sea-view", &bob, None).await.0, StatusCode::FORBIDDEN);
    let add = format!("csrf={csrf}&email=bob%40example.org");
    assert_eq!(post("/provider/services/sea-view/managers", ada.clone(), add).await.0, StatusCode::SEE_OTHER);
    assert_eq!(browse(&t, "GET", "/provider/services/sea-view", &bob, None).await.0, StatusCode::OK);
    let bob_id = t.node.accounts().account_by_email("bob@example.org").await.unwrap().unwrap().0;
    let ada_id = t.node.accounts().account_by_email("ada@example.org").await.unwrap().unwrap().0;
    let remove = |user: u64| format!("csrf={csrf}&user={user}");
    assert_eq!(
        post("/provider/services/sea-view/managers/remove", ada.clone(), remove(bob_id)).await.0,
        StatusCode::SEE_OTHER
    );
    assert_eq!(browse(&t, "GET", "/provider/services/sea-view", &bob, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        post("/provider/services/sea-view/managers/remove", ada.clone(), remove(ada_id)).await.0,
        StatusCode::CONFLICT
    );

    // Withdrawing asks for the password again.
    let withdraw = |password: &str| format!("csrf={csrf}&password={password}");
    let (status, _, html) = post("/provider/services/sea-view/withdraw", ada.clone(), withdraw("guess")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{html}");
    assert_eq!(t.call("GET", "/api/v1/listings/sea-view", None).await.1["withdrawn"], false);
    let (status, _, _) =
        post("/provider/services/sea-view/withdraw", ada.clone(), withdraw("a+long+enough+phrase")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(t.call("GET", "/api/v1/listings/sea-view", None).await.1["withdrawn"], true);
}

#[tokio::test]
async fn the_admin_console_shows_records_by_origin_and_equivocation_alerts() {
    use caravan_records::{sign_one, Draft, Payload};
    use prost::Message as _;
    let t = TestNode::start().await;
    t.hotel(2).await;
    // The leader's next publishing point signs the listing and its days.
    for _ in 0..500 {
        if caravan_api::LedgerService::own_records(&t.node, 0, 10).await.unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    add_account(&t, "root@example.org", caravan_accounts::Role::Admin).await;
    // A hostile owner signs two different records for one slot and version.
    let now = t.node.now();
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let draft = |title: &str| Draft {
        key: "room-1".into(),
        version: 1,
        time: now,
        payload: Payload::Listing(caravan_model::Listing {
            title: title.into(),
            ..caravan_test_utils::stay("room-1", "Lisbon", 1)
        }),
    };
    let lies = vec![sign_one(&key, &draft("One")), sign_one(&key, &draft("Two"))];
    let liar = caravan_records::Origin(key.verifying_key().to_bytes());
    let hostile = liar.to_hex();
    let envelope = caravan_records::proto::Envelope { records: lies, ..Default::default() }.encode_to_vec();
    let gossip = caravan_node::ReplicationEvent::Gossip { from: "hostile".into(), envelope };
    t.node.replicate(gossip).await.unwrap();
    for _ in 0..500 {
        if t.node.read_catalog(|catalog| catalog.is_frozen(&liar)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let (status, origins) = t.call("GET", "/api/v1/origins", None).await;
    assert_eq!(status, StatusCode::OK, "{origins}");
    let own = t.node.origin().to_hex();
    assert_eq!(origins["origins"][0]["origin"], own, "{origins}");
    assert!(origins["origins"][0]["records"].as_u64().unwrap() >= 2, "a listing and its availability: {origins}");
    assert_eq!(origins["equivocations"][0]["origin"], hostile, "{origins}");
    let (status, peers) = t.call("GET", "/api/v1/peers", None).await;
    assert_eq!((status, peers["peers"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "no network here");

    let root = log_in(&t, "root@example.org").await;
    let (status, _, html) = browse(&t, "GET", "/admin", &root, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Equivocation alerts") && html.contains(&hostile), "{html}");
    assert!(html.contains("Records by origin") && html.contains(&own), "{html}");
    assert!(html.contains("No peer is connected"), "{html}");
    let (status, _) = t.call_with("GET", "/api/v1/peers", None, &[("authorization", "anonymous")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "operators only");
}
