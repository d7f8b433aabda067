//! The traveller's pages: server-rendered search for stays and trips.

use super::*;

async fn page(t: &TestNode, path: &str) -> (StatusCode, String, String) {
    let request = Request::get(path).header("authorization", "anonymous").body(Body::empty()).unwrap();
    let response = caravan_api::router(t.node.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn home_and_assets_render_without_an_account() {
    let t = TestNode::start();
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
    let t = TestNode::start();
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
    let t = TestNode::start();
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
