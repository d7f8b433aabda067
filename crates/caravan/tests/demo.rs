//! `caravan demo` starts its network, fills it, and serves searchable,
//! bookable pages at the address asked for.

mod support;

#[test]
fn the_demo_serves_a_searchable_catalog() {
    let demo = support::Demo::start();
    let tomorrow = support::tomorrow();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (trips, stays) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let get = |path: String| {
            let client = client.clone();
            let url = format!("{}{path}", demo.url);
            async move { client.get(url).send().await.unwrap().text().await.unwrap() }
        };
        let trips = get(format!("/trips?from=GVA&to=ANC&date={tomorrow}")).await;
        let stays =
            get(format!("/stays?city=annecy&check_in={tomorrow}&check_out={}&guests=2", tomorrow.add_days(2))).await;
        (trips, stays)
    });
    assert!(trips.contains("1 itinerary") && trips.contains("/book?parts="), "{trips}");
    assert!(stays.contains("2 stays available"), "{stays}");
    assert!(demo.members.len() == 6, "{:?}", demo.members);
}
