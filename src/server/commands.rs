//! The monitoring commands of the CLI: `collect`, `usage` and `sync`. Each
//! works on the database directly (a running panel may be polling at the
//! same time: polls are applied in write transactions, and one not newer than
//! the last applied is ignored).

use crate::domain::accounting::Counters;
use crate::domain::wg_dump::WgDump;
use crate::domain::Protocol;
use crate::domain::{ByteCount, IpNetwork, PublicKey, RemoteCommand};
use crate::server::poll::{poll_server, read_server, store_reading, Reading};
use crate::server::poller::{transport_for, PollSettings};
use crate::server::store::{ServerRecord, Store, UsageQuery, UsageRow};
use anyhow::{bail, Context};
use chrono::Utc;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::io::Write;

async fn all_servers(
    store: &dyn Store,
    settings: &PollSettings,
    only: Option<&str>,
) -> anyhow::Result<Vec<ServerRecord>> {
    let now = Utc::now();
    let month = crate::domain::accounting::month_key(now, &settings.timezone);
    let servers = store.servers(now, &month).await.context("reading servers")?;
    match only {
        None => Ok(servers),
        Some(name) => {
            let picked: Vec<_> = servers.into_iter().filter(|s| s.name.as_str() == name).collect();
            if picked.is_empty() {
                bail!("there is no server named {name:?}");
            }
            Ok(picked)
        }
    }
}

/// Polls every server once and prints one line each. Fails if any failed.
pub async fn collect(store: &dyn Store, settings: &PollSettings, out: &mut impl Write) -> anyhow::Result<()> {
    let servers = all_servers(store, settings, None).await?;
    if servers.is_empty() {
        writeln!(out, "no servers")?;
        return Ok(());
    }
    let mut failed = 0;
    for mut record in servers {
        let mut transport = transport_for(&record, settings.ssh);
        match poll_server(transport.as_mut(), &mut record, store, settings.limits(), None).await {
            Ok(o) if o.applied => writeln!(
                out,
                "{}: ok, {} {}, +{} up, +{} down, {} sessions opened, {} closed",
                record.name,
                o.sources,
                if record.protocol == Protocol::Openvpn { "sessions" } else { "peers" },
                ByteCount::new(o.new.rx).human(),
                ByteCount::new(o.new.tx).human(),
                o.sessions_opened,
                o.sessions_closed
            )?,
            Ok(o) => writeln!(out, "{}: ok, {} sources, nothing new since the last poll", record.name, o.sources)?,
            Err(e) => {
                failed += 1;
                writeln!(out, "{}: error: {e}", record.name)?;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} server(s) could not be polled");
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageFormat {
    Table,
    Json,
    Csv,
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// Prints usage rows as a table, JSON or CSV (bytes exact in JSON and CSV).
pub fn print_usage(rows: &[UsageRow], format: UsageFormat, out: &mut impl Write) -> anyhow::Result<()> {
    match format {
        UsageFormat::Json => {
            let items: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({
                        "server": r.server, "identity": r.identity, "name": r.name, "month": r.month,
                        "sent": r.bytes.rx, "received": r.bytes.tx, "total": r.bytes.total(),
                    })
                })
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?;
        }
        UsageFormat::Csv => {
            writeln!(out, "server,identity,name,month,sent,received,total")?;
            for r in rows {
                writeln!(
                    out,
                    "{},{},{},{},{},{},{}",
                    csv_field(&r.server),
                    csv_field(&r.identity),
                    csv_field(r.name.as_deref().unwrap_or("")),
                    r.month.as_deref().unwrap_or(""),
                    r.bytes.rx,
                    r.bytes.tx,
                    r.bytes.total()
                )?;
            }
        }
        UsageFormat::Table => {
            if rows.is_empty() {
                writeln!(out, "no usage recorded")?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<20} {:<46} {:<8} {:>10} {:>10} {:>10}",
                "SERVER", "CLIENT", "MONTH", "SENT", "RECEIVED", "TOTAL"
            )?;
            let mut sum = Counters::ZERO;
            for r in rows {
                sum += r.bytes;
                writeln!(
                    out,
                    "{:<20} {:<46} {:<8} {:>10} {:>10} {:>10}",
                    r.server,
                    r.name.as_deref().unwrap_or(&r.identity),
                    r.month.as_deref().unwrap_or("total"),
                    ByteCount::new(r.bytes.rx).human(),
                    ByteCount::new(r.bytes.tx).human(),
                    ByteCount::new(r.bytes.total()).human()
                )?;
            }
            writeln!(
                out,
                "{:<20} {:<46} {:<8} {:>10} {:>10} {:>10}",
                "",
                "",
                "sum",
                ByteCount::new(sum.rx).human(),
                ByteCount::new(sum.tx).human(),
                ByteCount::new(sum.total()).human()
            )?;
        }
    }
    Ok(())
}

pub async fn usage(
    store: &dyn Store,
    query: &UsageQuery,
    format: UsageFormat,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let rows = store.usage(query).await.context("reading usage")?;
    print_usage(&rows, format, out)
}

/// One difference between the database and an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// On the host, not part of the wanted configuration.
    OnlyOnHost {
        key: PublicKey,
        allowed: Vec<String>,
    },
    /// Wanted, but missing from the host.
    OnlyInDatabase {
        key: PublicKey,
        allowed: Vec<String>,
    },
    AllowedIpsDiffer {
        key: PublicKey,
        host: Vec<String>,
        database: Vec<String>,
    },
}

fn sorted(ips: &[String]) -> Vec<String> {
    ips.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect()
}

/// Compares the wanted peers (managed clients) with an interface's dump.
pub fn compare(dump: &WgDump, managed: &HashMap<String, Vec<String>>) -> Vec<Drift> {
    let mut drift = Vec::new();
    let mut on_host = HashMap::new();
    for peer in &dump.peers {
        let allowed: Vec<String> = sorted(&peer.allowed_ips.iter().map(ToString::to_string).collect::<Vec<_>>());
        let key = peer.public_key.to_string();
        match managed.get(&key) {
            None => drift.push(Drift::OnlyOnHost { key: peer.public_key, allowed: allowed.clone() }),
            Some(wanted) if sorted(wanted) != allowed => drift.push(Drift::AllowedIpsDiffer {
                key: peer.public_key,
                host: allowed.clone(),
                database: sorted(wanted),
            }),
            Some(_) => {}
        }
        on_host.insert(key, allowed);
    }
    let mut missing: Vec<_> = managed.iter().filter(|(k, _)| !on_host.contains_key(*k)).collect();
    missing.sort();
    for (key, allowed) in missing {
        if let Ok(key) = PublicKey::parse(key) {
            drift.push(Drift::OnlyInDatabase { key, allowed: sorted(allowed) });
        }
    }
    drift
}

fn networks(ips: &[String]) -> anyhow::Result<Vec<IpNetwork>> {
    ips.iter().map(|ip| IpNetwork::parse(ip).with_context(|| format!("stored allowed IP {ip:?}"))).collect()
}

/// Compares (and with `fix`, repairs) every WireGuard/AmneziaWG server.
/// Returns the number of differences left unrepaired.
pub async fn sync(
    store: &dyn Store,
    settings: &PollSettings,
    only: Option<&str>,
    fix: bool,
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let mut left = 0;
    for record in all_servers(store, settings, only).await? {
        let Some(tool) = record.protocol.wg_tool() else {
            writeln!(out, "{}: skipped (sync applies to WireGuard and AmneziaWG)", record.name)?;
            continue;
        };
        let Some(interface) = record.interface.clone() else { continue };
        let mut transport = transport_for(&record, settings.ssh);
        let at = Utc::now();
        let reading = read_server(transport.as_mut(), &record.target(), settings.ssh.command)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", record.name))?;
        // Record what was read, so every peer has a row and no traffic is lost.
        store_reading(store, record.id, record.protocol, &reading, at, settings.timezone, false, None)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", record.name))?;
        let Reading::Wireguard(dump) = reading else { continue };
        let month = crate::domain::accounting::month_key(at, &settings.timezone);
        let managed: HashMap<String, Vec<String>> = store
            .clients(record.id, &month)
            .await?
            .into_iter()
            .filter(|c| c.managed && !c.disabled)
            .map(|c| (c.identity, c.desired_allowed_ips.unwrap_or_default()))
            .collect();
        let drift = compare(&dump, &managed);
        if drift.is_empty() {
            writeln!(out, "{}: in sync ({} peers)", record.name, dump.peers.len())?;
            continue;
        }
        let mut imports = Vec::new();
        for d in &drift {
            match (d, fix) {
                (Drift::OnlyOnHost { key, allowed }, false) => {
                    writeln!(out, "{}: only on the host: {key} ({})", record.name, allowed.join(","))?
                }
                (Drift::OnlyInDatabase { key, allowed }, false) => {
                    writeln!(out, "{}: only in the database: {key} ({})", record.name, allowed.join(","))?
                }
                (Drift::AllowedIpsDiffer { key, host, database }, false) => writeln!(
                    out,
                    "{}: allowed IPs differ for {key}: host {}, database {}",
                    record.name,
                    host.join(","),
                    database.join(",")
                )?,
                (Drift::OnlyOnHost { key, allowed }, true) => {
                    imports.push((key.to_string(), allowed.clone()));
                    writeln!(out, "{}: imported {key} ({})", record.name, allowed.join(","))?;
                }
                (Drift::OnlyInDatabase { key, allowed: wanted }, true)
                | (Drift::AllowedIpsDiffer { key, database: wanted, .. }, true) => {
                    let command =
                        RemoteCommand::set_peer(&record.command_prefix, tool, &interface, key, &networks(wanted)?);
                    transport.run(&command).await.with_context(|| format!("{}: running `{command}`", record.name))?;
                    let verb =
                        if matches!(d, Drift::OnlyInDatabase { .. }) { "re-added" } else { "set allowed IPs of" };
                    writeln!(out, "{}: {verb} {key} ({}) with `{command}`", record.name, wanted.join(","))?;
                }
            }
        }
        if fix {
            store.set_managed(record.id, &imports).await?;
            writeln!(
                out,
                "{}: peers changed at runtime; persist them in the interface's configuration file",
                record.name
            )?;
        } else {
            left += drift.len();
        }
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::wg_dump::parse_wg_dump;

    const SERVER: &str = include_str!("../domain/fixtures/wg_show_server_dump.txt");

    #[test]
    fn compare_finds_each_kind_of_drift() {
        let dump = parse_wg_dump(SERVER).unwrap();
        let mut managed: HashMap<String, Vec<String>> = HashMap::new();
        // Two peers wanted as they are, one with other allowed IPs, one missing.
        managed.insert("lacRpYsTqY0YYTS6whjEVcQTSfehGdVnLFr4vbysvVc=".into(), vec!["10.77.200.2/32".into()]);
        managed.insert(
            "hrOeuHs9Pv5cMWmTP48msP9yD3BXipu1np8xB1cL40Q=".into(),
            vec!["fd77:200::3/128".into(), "10.77.200.3/32".into()],
        );
        managed.insert("/IXYQ/rrbepDDtmTrw5GRHZdu6X5sDaht0bZ4Klss1g=".into(), vec!["10.77.200.9/32".into()]);
        managed.insert("mZLDwpoH/njrp5E3Sl3OIKFdvgohD8To1CU/C7CAlhw=".into(), vec!["10.77.200.7/32".into()]);
        let drift = compare(&dump, &managed);
        assert_eq!(drift.len(), 3, "{drift:?}");
        assert!(matches!(&drift[0], Drift::AllowedIpsDiffer { host, .. } if host.len() == 2));
        assert!(matches!(&drift[1], Drift::OnlyOnHost { allowed, .. } if allowed.is_empty()));
        assert!(
            matches!(&drift[2], Drift::OnlyInDatabase { allowed, .. } if allowed == &vec!["10.77.200.7/32".to_owned()])
        );
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_nothing_else() {
        assert_eq!(csv_field("alice"), "alice");
        assert_eq!(csv_field("Doe, John"), "\"Doe, John\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn usage_prints_exact_bytes_in_csv_and_json() {
        let rows = vec![UsageRow {
            server: "fra1".into(),
            identity: "alice".into(),
            name: None,
            month: Some("2026-11".into()),
            bytes: Counters::new(1_610_612_736, 5),
        }];
        let mut csv = Vec::new();
        print_usage(&rows, UsageFormat::Csv, &mut csv).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "server,identity,name,month,sent,received,total\nfra1,alice,,2026-11,1610612736,5,1610612741\n"
        );
        let mut js = Vec::new();
        print_usage(&rows, UsageFormat::Json, &mut js).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&js).unwrap();
        assert_eq!(v[0]["total"], 1_610_612_741u64);
        let mut table = Vec::new();
        print_usage(&rows, UsageFormat::Table, &mut table).unwrap();
        assert!(String::from_utf8(table).unwrap().contains("1.5 GB"));
    }
}
