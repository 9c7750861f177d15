use super::*;

const WG0: &str = include_str!("../fixtures/wg0.conf");
const AWG0: &str = include_str!("../fixtures/awg0.conf");
const ALICE: &str = "lacRpYsTqY0YYTS6whjEVcQTSfehGdVnLFr4vbysvVc=";
const BOB: &str = "hrOeuHs9Pv5cMWmTP48msP9yD3BXipu1np8xB1cL40Q=";
const CAROL: &str = "/IXYQ/rrbepDDtmTrw5GRHZdu6X5sDaht0bZ4Klss1g=";
const DAVE: &str = "5Lr8ODi7KF5ezxs9j0Na7q61J+ohIfJndGHyKyLmszA=";

fn key(k: &str) -> PublicKey {
    PublicKey::parse(k).unwrap()
}

fn keys(text: &str) -> Vec<String> {
    peer_keys(text).unwrap().iter().map(ToString::to_string).collect()
}

#[test]
fn the_peers_of_a_real_file_are_listed_in_order() {
    assert_eq!(keys(WG0), [ALICE, BOB, CAROL]);
    assert_eq!(interface_value(WG0, "listenport"), Some("51820"));
    assert_eq!(interface_value(WG0, "Address"), Some("10.77.200.1/24, fd77:200::1/64"));
}

#[test]
fn removing_a_peer_takes_its_section_and_name_comment_and_keeps_every_other_line() {
    let (text, removed) = remove_peer(WG0, &key(BOB)).unwrap();
    let removed = removed.unwrap();
    assert_eq!(
        removed.text,
        "### Client bob\n[Peer]\nPublicKey = hrOeuHs9Pv5cMWmTP48msP9yD3BXipu1np8xB1cL40Q=\n\
         AllowedIPs = 10.77.200.3/32,fd77:200::3/128\nPersistentKeepalive = 25 # keeps NAT open\n\
         # an old note about bob\n"
    );
    assert_eq!(keys(&text), [ALICE, CAROL]);
    let expected = WG0.replace(&format!("{}\n", removed.text), "");
    assert_eq!(text, expected, "nothing else changed");
    assert!(text.contains("PostUp = iptables -A FORWARD -i %i -j ACCEPT"));

    // Put back, it is a peer again with the same lines.
    let back = add_peer(&text, &removed.text).unwrap();
    assert_eq!(keys(&back), [ALICE, CAROL, BOB]);
    assert!(back.ends_with(&removed.text));
    let (again, _) = remove_peer(&back, &key(BOB)).unwrap();
    assert_eq!(again, text, "remove after restore gives the same file");
}

#[test]
fn the_last_and_the_first_peer_come_out_cleanly() {
    let (text, removed) = remove_peer(WG0, &key(CAROL)).unwrap();
    assert!(removed.unwrap().text.starts_with("[Peer]\n# carol"));
    assert!(text.ends_with("# an old note about bob\n"), "{text}");
    let (text, removed) = remove_peer(WG0, &key(ALICE)).unwrap();
    assert!(removed.unwrap().text.starts_with("### Client alice\n"));
    assert!(text.contains("PostDown = iptables -D FORWARD -i %i -j ACCEPT\n\n### Client bob\n"), "{text}");
}

#[test]
fn an_unknown_peer_leaves_the_file_as_it_was() {
    let (text, removed) = remove_peer(WG0, &key(DAVE)).unwrap();
    assert_eq!((text.as_str(), removed), (WG0, None));
}

#[test]
fn a_peer_is_not_added_twice_and_a_section_must_be_one_peer() {
    let alice = PeerEntry {
        comment: None,
        public_key: key(ALICE),
        preshared_key: None,
        allowed_ips: vec!["10.77.200.9/32".into()],
        persistent_keepalive: None,
    };
    assert_eq!(add_peer(WG0, &alice.to_string()), Err(ConfigError::DuplicatePeer));
    for bad in ["[Peer]\nAllowedIPs = 10.0.0.1/32\n", "[Interface]\nListenPort = 1\n", "PublicKey = x\n"] {
        assert_eq!(add_peer(WG0, bad), Err(ConfigError::BadPeerBlock), "{bad}");
    }
    let two = format!("{alice}\n[Peer]\nPublicKey = {DAVE}\n");
    assert_eq!(add_peer(WG0, &two), Err(ConfigError::BadPeerBlock));
}

#[test]
fn amneziawg_settings_stay_and_can_be_read() {
    let values: Vec<&str> = AMNEZIA_KEYS.iter().map(|k| interface_value(AWG0, k).unwrap()).collect();
    assert_eq!(values, ["4", "40", "70", "52", "108", "1374620149", "1652741262", "2070497811", "1917303236"]);
    let (text, removed) = remove_peer(AWG0, &key(ALICE)).unwrap();
    assert!(removed.is_some());
    assert_eq!(text, AWG0.split("\n\n[Peer]").next().unwrap().to_owned() + "\n");
    assert!(text.contains("H4 = 1917303236\n"));
}

#[test]
fn a_new_peer_is_written_as_wg_quick_reads_it_and_a_hostile_name_stays_a_comment() {
    let entry = PeerEntry {
        comment: Some("dave\n[Interface]\nPostUp = touch /tmp/owned".into()),
        public_key: key(DAVE),
        preshared_key: Some("L1hBgelsbry1Ggh4uajmf6NfcW0bMHYUikVfHVhG+DU=".into()),
        allowed_ips: vec!["10.77.200.5/32".into(), "fd77:200::5/128".into()],
        persistent_keepalive: Some(25),
    };
    let text = add_peer(WG0, &entry.to_string()).unwrap();
    assert!(text.ends_with(&format!(
        "\n\n# dave [Interface] PostUp = touch /tmp/owned\n[Peer]\nPublicKey = {DAVE}\n\
         PresharedKey = L1hBgelsbry1Ggh4uajmf6NfcW0bMHYUikVfHVhG+DU=\n\
         AllowedIPs = 10.77.200.5/32, fd77:200::5/128\nPersistentKeepalive = 25\n"
    )));
    assert_eq!(keys(&text), [ALICE, BOB, CAROL, DAVE]);
    assert_eq!(text.matches("[Interface]").count(), 2, "the name is one comment line, not a section");
    assert_eq!(text.lines().filter(|l| l.starts_with("PostUp")).count(), 1);
}

#[test]
fn a_broken_file_is_refused_with_its_line() {
    assert_eq!(peer_keys("[Peer]\nPublicKey = x\n"), Err(ConfigError::BadKey { line: 2 }));
    assert_eq!(
        peer_keys("ListenPort = 1\n[Interface]\n"),
        Err(ConfigError::Syntax { line: 1, reason: "a setting before any section" })
    );
    assert_eq!(
        peer_keys("[Interface]\nnonsense\n"),
        Err(ConfigError::Syntax { line: 2, reason: "expected Key = Value" })
    );
    assert_eq!(peer_keys("[Peer]\n"), Err(ConfigError::NoInterface));
}

#[test]
fn a_revoked_peer_stays_in_the_file_only_as_comments_and_comes_back_exactly() {
    let (revoked, section) = revoke_peer(WG0, &key(BOB)).unwrap();
    let section = section.unwrap();
    assert_eq!(keys(&revoked), [ALICE, CAROL], "wg-quick no longer sees bob");
    assert!(revoked.contains(&format!("{REVOKED_MARK}{BOB}\n#| ### Client bob\n#| [Peer]\n")), "{revoked}");
    // Revoking again, or a peer that is not there, changes nothing.
    assert_eq!(revoke_peer(&revoked, &key(BOB)).unwrap(), (revoked.clone(), None));

    let (restored, back) = restore_peer(&revoked, &key(BOB)).unwrap();
    assert_eq!(back.unwrap().text, section.text);
    assert_eq!(keys(&restored), [ALICE, CAROL, BOB]);
    assert!(!restored.contains(REVOKED_MARK));
    assert_eq!(restore_peer(&restored, &key(BOB)).unwrap(), (restored.clone(), None), "restoring twice is a no-op");
    let settings = peer_settings(&section.text);
    assert_eq!(settings.allowed_ips, ["10.77.200.3/32", "fd77:200::3/128"]);
    assert_eq!((settings.preshared_key, settings.persistent_keepalive), (None, Some(25)));
    let alice = peer_settings(&remove_peer(WG0, &key(ALICE)).unwrap().1.unwrap().text);
    assert_eq!(alice.preshared_key.as_deref(), Some("L1hBgelsbry1Ggh4uajmf6NfcW0bMHYUikVfHVhG+DU="));
}

#[test]
fn a_forgotten_peer_leaves_no_live_or_revoked_trace() {
    let (revoked, _) = revoke_peer(WG0, &key(BOB)).unwrap();
    let (forgotten, removed) = forget_peer(&revoked, &key(BOB)).unwrap();
    assert!(removed);
    assert!(!forgotten.contains(BOB) && !forgotten.contains(REVOKED_MARK), "{forgotten}");
    assert_eq!(keys(&forgotten), [ALICE, CAROL]);
    let (live_gone, removed) = forget_peer(WG0, &key(ALICE)).unwrap();
    assert!(removed && !live_gone.contains(ALICE));
    assert_eq!(forget_peer(&forgotten, &key(BOB)).unwrap(), (forgotten.clone(), false), "twice is a no-op");
    assert!(forget_peer(&forgotten, &key(DAVE)).unwrap().0 == forgotten);
}
