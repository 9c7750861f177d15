use super::*;
use chrono::TimeZone;

fn client(id: i64, label: &str, ip: &str, connection: ConnectionStatus, month_tx: u64) -> ClientFacts {
    ClientFacts {
        id,
        label: label.to_owned(),
        identity: format!("key{id}"),
        ip: Some(ip.to_owned()),
        email: None,
        username: None,
        connection,
        disabled: false,
        month: Counters::new(id as u64, month_tx),
        total: Counters::new(id as u64 * 10, month_tx * 10),
        last_seen: Some(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + chrono::Duration::minutes(id)),
    }
}

fn fleet() -> Vec<ClientFacts> {
    use ConnectionStatus::*;
    let mut disabled = client(5, "eve", "10.0.0.10", Offline, 0);
    disabled.disabled = true;
    vec![
        client(1, "Bob", "10.0.0.9", Online, 300),
        client(2, "alice", "10.0.0.2", Online, 100),
        client(3, "carol", "10.0.0.100", NeverConnected, 0),
        client(4, "dave", "10.0.0.3/32", RecentlySeen, 200),
        disabled,
    ]
}

fn query(text: &str) -> ClientQuery {
    ClientQuery::parse(text.split('&').filter_map(|p| p.split_once('='))).unwrap()
}

#[test]
fn an_empty_query_is_the_first_page_by_name() {
    let q = query("");
    assert_eq!(q, ClientQuery::default());
    let s = select(fleet(), &q);
    assert_eq!(s.ids, vec![2, 1, 3, 4, 5], "names ignore case");
    assert_eq!((s.matched, s.total, s.online, s.page, s.pages), (5, 5, 2, 1, 1));
}

#[test]
fn pages_split_the_sorted_list_without_overlap_and_a_page_past_the_end_is_the_last() {
    let s = select(fleet(), &query("per_page=2&page=2"));
    assert_eq!(s.ids, vec![3, 4]);
    assert_eq!((s.page, s.pages), (2, 3));
    let s = select(fleet(), &query("per_page=2&page=9"));
    assert_eq!(s.ids, vec![5]);
    assert_eq!(s.page, 3);
    let empty = select(Vec::new(), &query("page=4"));
    assert_eq!((empty.ids.len(), empty.page, empty.pages), (0, 1, 1));
}

#[test]
fn search_matches_name_key_ip_email_and_username_ignoring_case() {
    let mut clients = fleet();
    clients[2].email = Some("Carol@Example.org".into());
    clients[3].username = Some("DAVE.R".into());
    assert_eq!(select(clients.clone(), &query("q=BOB")).ids, vec![1]);
    assert_eq!(select(clients.clone(), &query("q=key3")).ids, vec![3]);
    assert_eq!(select(clients.clone(), &query("q=0.0.10")).ids, vec![3, 5], "10.0.0.100 and 10.0.0.10");
    assert_eq!(select(clients.clone(), &query("q=example.ORG")).ids, vec![3]);
    assert_eq!(select(clients.clone(), &query("q=dave.r")).ids, vec![4]);
    let none = select(clients, &query("q=nobody"));
    assert_eq!((none.ids.len(), none.matched, none.total), (0, 0, 5));
}

#[test]
fn status_filters_keep_only_their_clients() {
    let ids = |q: &str| select(fleet(), &query(q)).ids;
    assert_eq!(ids("status=online"), vec![2, 1]);
    assert_eq!(ids("status=offline"), vec![4, 5], "recently seen counts as offline");
    assert_eq!(ids("status=never"), vec![3]);
    assert_eq!(ids("status=disabled"), vec![5]);
    let s = select(fleet(), &query("status=online&q=bob"));
    assert_eq!((s.ids, s.matched, s.online), (vec![1], 1, 2));
}

#[test]
fn sorts_order_numbers_as_numbers_and_bytes_largest_first_by_default() {
    let ids = |q: &str| select(fleet(), &query(q)).ids;
    assert_eq!(ids("sort=ip"), vec![2, 4, 1, 5, 3], "10.0.0.2 < .3 < .9 < .10 < .100");
    assert_eq!(ids("sort=ip&dir=desc"), vec![3, 5, 1, 4, 2]);
    assert_eq!(ids("sort=month_down"), vec![1, 4, 2, 5, 3], "most first");
    assert_eq!(ids("sort=month_down&dir=asc"), vec![3, 5, 2, 4, 1]);
    assert_eq!(ids("sort=total_up"), vec![5, 4, 3, 2, 1]);
    assert_eq!(ids("sort=last_seen"), vec![5, 4, 3, 2, 1], "newest first");
    assert_eq!(ids("sort=status"), vec![2, 1, 4, 3, 5], "online, recently seen, never, disabled");
}

#[test]
fn bad_values_are_refused_with_what_is_allowed() {
    let err = |text: &str| ClientQuery::parse(text.split('&').filter_map(|p| p.split_once('='))).unwrap_err().0;
    assert!(err("sort=size").starts_with("sort: name, ip"));
    assert!(err("status=gone").starts_with("status: all"));
    assert_eq!(err("dir=up"), "dir: asc or desc");
    assert_eq!(err("page=0"), "page: a whole number from 1 to 4294967295");
    assert_eq!(err("per_page=501"), "per_page: a whole number from 1 to 500");
    assert_eq!(err("page=-1"), "page: a whole number from 1 to 4294967295");
}

#[test]
fn a_query_written_back_parses_to_itself_and_sorting_again_turns_the_order() {
    let q = query("q=A%20b&status=online&sort=month_down&page=3&per_page=20&unknown=1");
    assert_eq!(q.search.as_deref(), Some("A%20b"), "the caller decodes; the text is kept as given");
    let q = ClientQuery { search: Some("a b/ü".into()), ..q };
    let back = query(&q.to_query());
    assert_eq!(back.search.as_deref(), Some("a%20b%2F%C3%BC"), "encoded once; the caller decodes");
    assert_eq!((back.status, back.sort, back.descending, back.page, back.per_page), (q.status, q.sort, true, 3, 20));
    assert_eq!(ClientQuery::default().to_query(), "");
    let again = q.sorted_by(ClientSort::MonthDown);
    assert_eq!((again.descending, again.page), (false, 1));
    let other = q.sorted_by(ClientSort::Name);
    assert_eq!((other.sort, other.descending), (ClientSort::Name, false));
    assert_eq!(q.on_page(0).page, 1);
}

#[test]
fn a_long_search_is_cut_and_non_ascii_text_matches_ignoring_case() {
    let long = format!("q={}", "x".repeat(300));
    assert_eq!(query(&long).search.map(|s| s.len()), Some(MAX_SEARCH));
    let mut clients = fleet();
    clients[0].label = "Zoë Müller".into();
    assert_eq!(
        select(clients, &ClientQuery { search: Some("MÜLLER".to_lowercase()), ..Default::default() }).ids,
        vec![1]
    );
}
