//! Records as the API and the pages show them.

use crate::api::{AccessStatus, ClientStats, ClientView, EventView, ServerHealth, ServerView, SessionView, Traffic};
use crate::domain::policy::LimitPeriod;
use crate::domain::status::ConnectionStatus;
use crate::domain::{ByteCount, Protocol, PublicKey};
use crate::server::store::{ClientRecord, EventRecord, ServerRecord, SessionRecord};
use chrono::{DateTime, Utc};

fn traffic(c: crate::domain::accounting::Counters) -> Traffic {
    Traffic::new(c.rx, c.tx)
}

pub fn server_view(r: &ServerRecord) -> ServerView {
    let health = match (r.last_poll_at, &r.last_error) {
        (None, _) => ServerHealth::Pending,
        (Some(_), Some(_)) => ServerHealth::Error,
        (Some(_), None) => ServerHealth::Ok,
    };
    ServerView {
        id: r.id,
        name: r.name.to_string(),
        host: r.host.to_string(),
        port: r.port,
        user: r.user.to_string(),
        protocol: r.protocol,
        interface: r.interface.as_ref().map(ToString::to_string),
        command_prefix: r.command_prefix.parts().to_vec(),
        openvpn_status_path: r.openvpn.as_ref().and_then(|o| o.status_path.as_ref()).map(ToString::to_string),
        openvpn_management_port: r.openvpn.as_ref().and_then(|o| o.management_port),
        host_key_fingerprint: r.host_key.as_ref().map(|k| k.fingerprint.clone()),
        health,
        last_poll_at: r.last_poll_at,
        last_success_at: r.last_success_at,
        last_error: r.last_error.clone(),
        consecutive_failures: r.consecutive_failures,
        drift_count: r.drift_count,
        endpoint: r.client_defaults.endpoint.as_ref().map(ToString::to_string),
        dns: r.client_defaults.dns.iter().map(ToString::to_string).collect(),
        clients: r.clients,
        online: r.online,
        bytes_sent: r.total.rx,
        bytes_received: r.total.tx,
        month: traffic(r.month),
    }
}

/// A client as the API and pages show it; `tz` places its limit period.
pub fn client_view(c: &ClientRecord, now: DateTime<Utc>, tz: &chrono_tz::Tz) -> ClientView {
    let (connection, last_seen) = ConnectionStatus::of(c.protocol, c.on_host, c.latest_handshake, c.last_seen, now);
    let public_key = match c.protocol {
        Protocol::Openvpn => None,
        _ => PublicKey::parse(&c.identity).ok(),
    };
    ClientView {
        id: c.id,
        server_id: c.server_id,
        protocol: c.protocol,
        identity: c.identity.clone(),
        public_key,
        common_name: (c.protocol == Protocol::Openvpn).then(|| c.identity.clone()),
        username: c.username.clone(),
        name: c.name.clone(),
        client_ip: c.virtual_ip.clone(),
        endpoint: c.endpoint.clone(),
        allowed_ips: c.allowed_ips.clone(),
        status: if c.disabled { AccessStatus::Disabled } else { AccessStatus::Active },
        connection,
        stats: ClientStats::new(ByteCount::new(c.total.rx), ByteCount::new(c.total.tx), connection, last_seen, now),
        bytes_sent: c.total.rx,
        bytes_received: c.total.tx,
        month: traffic(c.month),
        last_handshake: c.latest_handshake,
        last_seen: c.last_seen,
        last_sync_at: Some(c.last_sync_at),
        managed: c.managed,
        on_host: c.on_host,
        email: c.email.clone(),
        note: c.note.clone(),
        user_id: c.user_id.map(|u| u.get()),
        disabled_reason: c.disabled_reason.map(|r| r.as_str().to_owned()),
        pending: c.pending,
        limit_used: crate::server::enforce::period_usage(c, now, tz).0,
        traffic_limit: c.policy.traffic_limit,
        traffic_warn_threshold: c.policy.traffic_warn_threshold.get(),
        limit_period: match c.policy.limit_period {
            LimitPeriod::Lifetime => "lifetime".to_owned(),
            LimitPeriod::Monthly { .. } => "monthly".to_owned(),
        },
        reset_day: match c.policy.limit_period {
            LimitPeriod::Monthly { reset_day } => Some(reset_day.get()),
            LimitPeriod::Lifetime => None,
        },
        expiry_date: c.policy.expiry_date,
    }
}

pub fn event_view(e: &EventRecord) -> EventView {
    let ev = &e.event;
    EventView {
        id: e.id,
        at: ev.at,
        actor: ev.actor.clone(),
        action: ev.action.clone(),
        reason: ev.reason.clone(),
        figures: ev.figures.clone(),
        client_id: ev.client_id.map(|c| c.get()),
        user_id: ev.user_id.map(|u| u.get()),
        server_id: ev.server_id.map(|s| s.get()),
        label: ev.label.clone(),
    }
}

pub fn session_view(s: &SessionRecord) -> SessionView {
    let client = s.client_name.clone().unwrap_or_else(|| match PublicKey::parse(&s.identity) {
        Ok(k) if s.protocol != Protocol::Openvpn => k.short(),
        _ => s.identity.clone(),
    });
    SessionView {
        id: s.id,
        server_id: s.server_id,
        server_name: s.server_name.clone(),
        client_id: s.client_id,
        client,
        user: s.user.clone(),
        identity: s.identity.clone(),
        session_key: s.session_key.clone(),
        protocol: s.protocol,
        connected_at: s.connected_at,
        disconnected_at: s.disconnected_at,
        last_seen_at: s.last_seen_at,
        endpoint: s.endpoint.clone(),
        virtual_ip: s.virtual_ip.clone(),
        bytes_sent: s.bytes.rx,
        bytes_received: s.bytes.tx,
        openvpn_client_id: s.openvpn_client_id,
    }
}
