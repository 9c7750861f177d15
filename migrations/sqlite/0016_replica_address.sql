-- Where the other replicas reach this one to have it carry out a change
-- on a host it polls (an internal endpoint; see src/server/forward.rs).
ALTER TABLE replicas ADD COLUMN address TEXT;
