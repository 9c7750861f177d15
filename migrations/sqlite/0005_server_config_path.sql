-- WireGuard and AmneziaWG: the wg-quick file the interface is brought up
-- from, edited when a peer is revoked or restored. NULL: the tool's default
-- (/etc/wireguard/<interface>.conf, /etc/amnezia/amneziawg/<interface>.conf).
ALTER TABLE servers ADD COLUMN config_path TEXT;
