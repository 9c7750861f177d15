//! Commands run on VPN hosts.
//!
//! SSH hands a command to the remote login shell as one string, so each word
//! is built from validated parts and then single-quoted. Nothing an admin types
//! is ever pasted into the line as shell syntax.

use super::keys::PublicKey;
use super::names::{CommandPrefix, InterfaceName, RemotePath};
use super::net::IpNetwork;
use std::fmt;

/// A program and its arguments, to run on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCommand {
    argv: Vec<String>,
}

impl RemoteCommand {
    fn with_prefix(prefix: &CommandPrefix, words: &[&str]) -> Self {
        let mut argv: Vec<String> = prefix.parts().to_vec();
        argv.extend(words.iter().map(|w| (*w).to_owned()));
        Self { argv }
    }

    /// `[prefix…] wg show <interface> dump`
    pub fn wg_dump(prefix: &CommandPrefix, interface: &InterfaceName) -> Self {
        Self::dump(prefix, "wg", interface)
    }

    /// `[prefix…] <tool> show <interface> dump`, tool `wg` or `awg`.
    pub fn dump(prefix: &CommandPrefix, tool: &'static str, interface: &InterfaceName) -> Self {
        Self::with_prefix(prefix, &[tool, "show", interface.as_str(), "dump"])
    }

    /// `[prefix…] <tool> set <interface> peer <key> allowed-ips <a,b>`: adds the
    /// peer, or sets its allowed IPs.
    pub fn set_peer(
        prefix: &CommandPrefix,
        tool: &'static str,
        interface: &InterfaceName,
        key: &PublicKey,
        allowed: &[IpNetwork],
    ) -> Self {
        let key = key.to_string();
        let allowed = allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        Self::with_prefix(prefix, &[tool, "set", interface.as_str(), "peer", &key, "allowed-ips", &allowed])
    }

    /// `[prefix…] <tool> set <interface> peer <key> remove`: the peer leaves
    /// the running interface (its traffic stops at once).
    pub fn remove_peer(prefix: &CommandPrefix, tool: &'static str, interface: &InterfaceName, key: &PublicKey) -> Self {
        let key = key.to_string();
        Self::with_prefix(prefix, &[tool, "set", interface.as_str(), "peer", &key, "remove"])
    }

    /// `[prefix…] <tool> set <interface> peer <k1> remove peer <k2> remove …`:
    /// many peers leave the running interface in one command.
    pub fn remove_peers(
        prefix: &CommandPrefix,
        tool: &'static str,
        interface: &InterfaceName,
        keys: &[PublicKey],
    ) -> Self {
        let mut cmd = Self::with_prefix(prefix, &[tool, "set", interface.as_str()]);
        for key in keys {
            cmd.argv.extend(["peer".to_owned(), key.to_string(), "remove".to_owned()]);
        }
        cmd
    }

    /// `[prefix…] <tool> set <interface> peer <key> allowed-ips <a,b>
    /// [persistent-keepalive <n>] [preshared-key /dev/stdin]`: the preshared
    /// key, when there is one, is sent on standard input, never in the line.
    pub fn restore_peer(
        prefix: &CommandPrefix,
        tool: &'static str,
        interface: &InterfaceName,
        key: &PublicKey,
        allowed: &[IpNetwork],
        keepalive: Option<u16>,
        preshared_on_stdin: bool,
    ) -> Self {
        let mut cmd = Self::set_peer(prefix, tool, interface, key, allowed);
        if let Some(k) = keepalive {
            cmd.argv.extend(["persistent-keepalive".to_owned(), k.to_string()]);
        }
        if preshared_on_stdin {
            cmd.argv.extend(["preshared-key".to_owned(), "/dev/stdin".to_owned()]);
        }
        cmd
    }

    /// `[prefix…] <tool> show <interface> public-key`: the interface's
    /// public key (the private key never leaves the host).
    pub fn interface_public_key(prefix: &CommandPrefix, tool: &'static str, interface: &InterfaceName) -> Self {
        Self::with_prefix(prefix, &[tool, "show", interface.as_str(), "public-key"])
    }

    /// `[prefix…] install -m 600 /dev/stdin <path>.tollgate-new`: the first
    /// half of an atomic write (standard input holds the content).
    pub fn write_new_file(prefix: &CommandPrefix, path: &RemotePath) -> Self {
        let staged = format!("{path}.tollgate-new");
        Self::with_prefix(prefix, &["install", "-m", "600", "/dev/stdin", &staged])
    }

    /// `[prefix…] mv -f -- <path>.tollgate-new <path>`: the rename that
    /// replaces the file in one step.
    pub fn replace_file(prefix: &CommandPrefix, path: &RemotePath) -> Self {
        let staged = format!("{path}.tollgate-new");
        Self::with_prefix(prefix, &["mv", "-f", "--", &staged, path.as_str()])
    }

    /// `[prefix…] cat -- <path>`
    pub fn read_file(prefix: &CommandPrefix, path: &RemotePath) -> Self {
        Self::with_prefix(prefix, &["cat", "--", path.as_str()])
    }

    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The line to send over SSH: every word single-quoted for a POSIX shell.
    pub fn to_shell_line(&self) -> String {
        self.argv.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ")
    }
}

impl fmt::Display for RemoteCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv.join(" "))
    }
}

/// Quotes one word for a POSIX shell: `'…'`, with `'` written as `'\''`.
pub fn shell_quote(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dump_command_quotes_every_word() {
        let prefix = CommandPrefix::parse("docker exec amnezia-awg").unwrap();
        let iface = InterfaceName::parse("wg0").unwrap();
        let cmd = RemoteCommand::wg_dump(&prefix, &iface);
        assert_eq!(cmd.to_shell_line(), "'docker' 'exec' 'amnezia-awg' 'wg' 'show' 'wg0' 'dump'");
        assert_eq!(cmd.to_string(), "docker exec amnezia-awg wg show wg0 dump");
        let plain = RemoteCommand::wg_dump(&CommandPrefix::empty(), &iface);
        assert_eq!(plain.argv(), ["wg", "show", "wg0", "dump"]);
    }

    #[test]
    fn peer_and_file_commands_are_built_from_validated_values() {
        let iface = InterfaceName::parse("awg0").unwrap();
        let key = PublicKey::parse("lacRpYsTqY0YYTS6whjEVcQTSfehGdVnLFr4vbysvVc=").unwrap();
        let ips = [IpNetwork::parse("10.8.0.2/32").unwrap(), IpNetwork::parse("fd00::2/128").unwrap()];
        let cmd = RemoteCommand::set_peer(&CommandPrefix::empty(), "awg", &iface, &key, &ips);
        assert_eq!(cmd.to_string(), format!("awg set awg0 peer {key} allowed-ips 10.8.0.2/32,fd00::2/128"));
        let path = RemotePath::parse("/etc/openvpn/status.log").unwrap();
        assert_eq!(
            RemoteCommand::read_file(&CommandPrefix::empty(), &path).to_shell_line(),
            "'cat' '--' '/etc/openvpn/status.log'"
        );
    }

    #[test]
    fn revoking_and_restoring_keep_the_preshared_key_off_the_command_line() {
        let iface = InterfaceName::parse("wg0").unwrap();
        let key = PublicKey::parse("lacRpYsTqY0YYTS6whjEVcQTSfehGdVnLFr4vbysvVc=").unwrap();
        let none = CommandPrefix::empty();
        assert_eq!(
            RemoteCommand::remove_peer(&none, "wg", &iface, &key).to_string(),
            format!("wg set wg0 peer {key} remove")
        );
        let ips = [IpNetwork::parse("10.77.1.2/32").unwrap()];
        let restore = RemoteCommand::restore_peer(&none, "wg", &iface, &key, &ips, Some(25), true);
        assert_eq!(
            restore.to_string(),
            format!("wg set wg0 peer {key} allowed-ips 10.77.1.2/32 persistent-keepalive 25 preshared-key /dev/stdin")
        );
        let path = RemotePath::parse("/etc/wireguard/wg0.conf").unwrap();
        assert_eq!(
            RemoteCommand::write_new_file(&none, &path).to_shell_line(),
            "'install' '-m' '600' '/dev/stdin' '/etc/wireguard/wg0.conf.tollgate-new'"
        );
        assert_eq!(
            RemoteCommand::replace_file(&none, &path).to_string(),
            "mv -f -- /etc/wireguard/wg0.conf.tollgate-new /etc/wireguard/wg0.conf"
        );
    }

    #[test]
    fn quoting_neutralises_shell_syntax() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
        assert_eq!(shell_quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(shell_quote(""), "''");
    }
}
