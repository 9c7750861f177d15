use super::*;

const WG0: &str = include_str!("../fixtures/wg0.conf");
const AWG0: &str = include_str!("../fixtures/awg0.conf");

#[test]
fn endpoints_parse_host_and_port_and_print_v6_in_brackets() {
    assert_eq!(Endpoint::parse("vpn.example.org:51820").unwrap().to_string(), "vpn.example.org:51820");
    assert_eq!(Endpoint::parse("[2001:db8::1]:51820").unwrap().to_string(), "[2001:db8::1]:51820");
    for bad in ["vpn.example.org", "2001:db8::1:51820", "host:0", "host:70000", "a b:1", "x;rm:1", ":1"] {
        assert!(Endpoint::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_next_address_skips_the_server_taken_and_revoked_addresses() {
    let text = "[Interface]\nAddress = 10.8.0.1/24, fd00::1/64\n\n[Peer]\nPublicKey = x\nAllowedIPs = 10.8.0.2/32\n\n\
                # tollgate: revoked peer y\n#| [Peer]\n#| PublicKey = y\n#| AllowedIPs = 10.8.0.3/32, fd00::3/128\n";
    let subnet = interface_subnet(text).unwrap();
    assert_eq!(subnet.to_string(), "10.8.0.1/24");
    let taken = taken_addresses(text);
    assert!(taken.contains(&"10.8.0.3".parse().unwrap()), "a revoked peer keeps its address");
    assert_eq!(next_free_address(&subnet, &taken), Some(Ipv4Addr::new(10, 8, 0, 4)));
}

#[test]
fn a_full_subnet_has_no_next_address() {
    let subnet = IpNetwork::parse("10.9.0.1/30").unwrap();
    let taken: BTreeSet<IpAddr> = ["10.9.0.2".parse().unwrap()].into();
    assert_eq!(next_free_address(&subnet, &taken), None);
    assert_eq!(next_free_address(&subnet, &BTreeSet::new()), Some(Ipv4Addr::new(10, 9, 0, 2)));
}

#[test]
fn real_files_give_their_subnet_and_every_peer_address() {
    let subnet = interface_subnet(WG0).expect("wg0.conf has an Address");
    assert!(subnet.addr().is_ipv4());
    let taken = taken_addresses(WG0);
    let next = next_free_address(&subnet, &taken).unwrap();
    assert!(!taken.contains(&IpAddr::V4(next)));
}

#[test]
fn an_amneziawg_client_config_repeats_the_servers_obfuscation_settings() {
    let obfuscation = obfuscation_of(AWG0);
    let keys: Vec<&str> = obfuscation.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.contains(&"Jc") && keys.contains(&"H4"), "{keys:?}");
    let config = ClientConfig {
        private_key: "cHJpdmF0ZQ==".into(),
        address: IpNetwork::parse("10.8.0.4/32").unwrap(),
        dns: vec!["1.1.1.1".parse().unwrap()],
        obfuscation,
        server_public_key: PublicKey::parse("xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=").unwrap(),
        preshared_key: Some("cHNr".into()),
        endpoint: Endpoint::parse("vpn.example.org:51820").unwrap(),
        allowed_ips: vec!["0.0.0.0/0".into(), "::/0".into()],
        persistent_keepalive: Some(25),
    };
    let text = config.to_string();
    assert!(
        text.starts_with("[Interface]\nPrivateKey = cHJpdmF0ZQ==\nAddress = 10.8.0.4/32\nDNS = 1.1.1.1\nJc = "),
        "{text}"
    );
    assert!(text.contains("\n[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nPresharedKey = cHNr\n"));
    assert!(
        text.ends_with("Endpoint = vpn.example.org:51820\nAllowedIPs = 0.0.0.0/0, ::/0\nPersistentKeepalive = 25\n")
    );
    assert!(!format!("{config:?}").contains("cHJpdmF0ZQ=="), "no key in debug output");
}

#[test]
fn a_new_peer_needs_a_name_and_keeps_hostile_text_as_text() {
    let body = |v: serde_json::Value| v.as_object().unwrap().clone();
    let hostile = "x'; rm -rf / $(reboot)\n`id`";
    let peer = parse_new_peer(&body(serde_json::json!({"name": hostile, "email": "a@b.io"}))).unwrap();
    assert_eq!((peer.name.as_str(), peer.email.as_deref()), ("x'; rm -rf / $(reboot)\n`id`", Some("a@b.io")));
    for (bad, field) in [
        (serde_json::json!({}), "name"),
        (serde_json::json!({"name": "  "}), "name"),
        (serde_json::json!({"name": "a", "email": "nope"}), "email"),
        (serde_json::json!({"name": "a", "user_id": 0}), "user_id"),
        (serde_json::json!({"name": "a", "address": "10.0.0.9"}), "address"),
    ] {
        assert_eq!(parse_new_peer(&body(bad)).unwrap_err().field, field);
    }
}
