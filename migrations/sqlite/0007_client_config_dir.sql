-- OpenVPN: the server's client-config-dir, where revoking a client writes a
-- `disable` line into the file named after its common name.
ALTER TABLE servers ADD COLUMN client_config_dir TEXT;
